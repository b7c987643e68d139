"""``replay --what-if``: the recorded day beside the same day re-run with changed settings.

Both sides start from the run's recorded state at 00:00 UTC and are measured
the same way (``ReplayBook``, whose books are the domain's ``RunBook``): the
day's figures by the names every surface uses (day_start_equity, end_equity,
day_pnl, realized_pnl, fees, daily_loss_pct, worst_daily_loss_pct,
max_drawdown_pct, risk_score) and beside them trades closed, net P&L, halts,
orders, fills, risk refusals. The first decision that differed is the first candle where the
action, the risk verdict or the orders it led to are not the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from application.replay.book import DECISION_TYPES, ReplayBook, name_of
from domain.run_book import DayFigures
from domain.events import DomainEvent

CENT = Decimal("0.01")


@dataclass(frozen=True)
class DayOutcome:
    """What a day came to, for one side of the comparison: the run book's named day figures (as shown:
    money to the cent, percentages to 0.0001) and what the replay counts beside them."""

    figures: DayFigures
    trades: int
    wins: int
    halts: int
    orders: int
    fills: int
    refusals: int
    end_position: Decimal

    def __getattr__(self, name: str) -> Any:
        """The named figures as shown (Decimals rounded as ``shown_day_figures`` rounds them), and net_pnl."""
        if name == "figures":  # (not set yet: copying or unpickling)
            raise AttributeError(name)
        shown = self.figures.shown()
        if name == "risk_score":
            return shown[name]
        if name in shown:
            return Decimal(shown[name])
        if name == "risk_level":
            return self.figures.risk_level
        if name == "net_pnl":
            return (self.figures.realized_pnl - self.figures.fees).quantize(CENT)
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        counts = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in vars(self).items() if k != "figures"}
        return {**self.figures.shown(), "risk_level": self.risk_level, "net_pnl": str(self.net_pnl), **counts}


def day_outcome(start: ReplayBook, events: list[DomainEvent]) -> tuple[DayOutcome, dict[datetime, tuple]]:
    """Fold the day's events into a copy of the start state; also the per-candle outcomes."""
    book = start.clone()
    trades0, wins0 = book.trades_total, book.wins_total
    halts0, orders0, fills0 = book.halts, book.orders_placed, book.fills
    refusals = 0
    steps: dict[datetime, list] = {}
    current: list | None = None
    for e in events:
        name = name_of(e)
        book.apply(e)
        if name in DECISION_TYPES:
            action = e.action.value if name == "DecisionMade" else f"FAILED->{e.fallback_action.value}"
            current = [action, None, []]
            steps[e.candle_start] = current
        elif name == "RiskAssessed":
            if not e.approved:
                refusals += 1
            if current is not None:
                current[1] = (e.approved, e.rule, str(e.approved_size_pct))
        elif name == "OrderPlaced" and current is not None:
            current[2].append((e.side.value, str(e.quantity)))
    p = book.portfolio
    f = book.day_figures()
    if f is None:
        raise ValueError("the run has no day to measure")
    figures = DayOutcome(
        figures=f, trades=book.trades_total - trades0, wins=book.wins_total - wins0, halts=book.halts - halts0,
        orders=book.orders_placed - orders0, fills=book.fills - fills0, refusals=refusals,
        end_position=sum((pos.quantity for pos in p.positions.values()), Decimal(0)),
    )
    return figures, {k: tuple((v[0], v[1], tuple(v[2]))) for k, v in steps.items()}


@dataclass(frozen=True)
class WhatIfReport:
    recorded: DayOutcome
    what_if: DayOutcome
    first_difference: dict[str, Any] | None
    changed_settings: dict[str, tuple[str | None, str | None]]

    def as_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded.as_dict(), "what_if": self.what_if.as_dict(),
                "first_decision_that_differed": self.first_difference,
                "changed_settings": {k: {"recorded": a, "what_if": b} for k, (a, b) in self.changed_settings.items()}}


def _step_text(step: tuple | None) -> str:
    if step is None:
        return "(no decision)"
    action, verdict, orders = step
    text = action
    if verdict is not None:
        approved, rule, size = verdict
        text += f", risk {'approved' if approved else 'refused'} by {rule} at {size}%"
    if orders:
        text += ", orders " + ", ".join(f"{side} {qty}" for side, qty in orders)
    return text


def compare_days(start: ReplayBook, recorded: list[DomainEvent], what_if: list[DomainEvent],
                 changed_settings: dict[str, tuple[str | None, str | None]]) -> WhatIfReport:
    """Recorded vs what-if figures, and the first candle whose decision, verdict or orders differ."""
    rec, rec_steps = day_outcome(start, recorded)
    alt, alt_steps = day_outcome(start, what_if)
    first = None
    for at in sorted(set(rec_steps) | set(alt_steps)):
        a, b = rec_steps.get(at), alt_steps.get(at)
        if a != b:
            first = {"candle_start": at.isoformat(), "recorded": _step_text(a), "what_if": _step_text(b)}
            break
    return WhatIfReport(rec, alt, first, changed_settings)


def what_if_day(log, limits, settings, exchange, store, captured, *, strategy=None,
                indicators=None, changed_settings=None) -> WhatIfReport:
    """Re-run the day with other settings (and optionally another strategy) and compare with the record.

    ``limits`` are the limits the run had (to measure the recorded day); ``settings`` carry the what-if
    limits. Without ``strategy`` the recorded decisions are replayed (no LLM call).
    """
    from application.replay.timeline import book_before_first_step
    from application.replay.rerun import RecordedDecisions, day_inputs, rerun_day

    if log.run is None:
        raise ValueError("no run traded on this day: nothing to re-run")
    start, recorded = book_before_first_step(log, limits)
    inputs = day_inputs(log)
    model = strategy or RecordedDecisions(inputs.decisions, log.run.strategy)
    warm = indicators(inputs.history) if callable(indicators) else indicators
    rerun = rerun_day(log, start, inputs, settings=settings, exchange=exchange, strategy=model, store=store,
                      indicators=warm, captured=captured)
    return compare_days(start, recorded, rerun.events, changed_settings or {})
