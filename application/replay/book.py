"""The state of one run at any instant, recomputed from its events (for replays).

``ReplayBook`` folds a run's events in log order. The run's books (cash,
positions, the UTC day and its figures, drawdown, halts) are the domain's
``RunBook`` (domain/run_book.py), the same fold the trading loop and the money
projections use; beside them it keeps what only a replay shows: working
orders, the stop loss / take profit armed on the position, open incidents and
the configuration ledger. ``snapshot()`` is what an operator asks for:
position, realized and unrealized P&L, the day's figures (``day_figures``, by
the names every surface uses), halts, the config in effect.

It never reads the read model (which may be owned by another process and
lags); it is a pure function of the events it is given.
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from application.replay.records import (  # noqa: F401  (re-exported: the replay modules read them here)
    _STATUS_AFTER, CENT, CONTROL_TYPES, DECISION_TYPES, FILL_TYPES, ORDER_TYPES, TERMINAL_STATUSES, ZERO, OrderView,
    RunInfo, _s,
)
from domain.brackets import Bracket, bracket_after_fill
from domain.control import TRADING_CONTROL_ID
from domain.events import DomainEvent
from domain.order_states import OrderSide
from domain.risk import RiskLimits
from domain.run_book import BooksHolder, DayFigures, RunBook

_PCT = Decimal("0.0001")


class ReplayBook(BooksHolder):
    """A run's state, event by event; ``apply`` each event in log order."""

    def __init__(self, run: RunInfo | None, limits: RiskLimits | None = None,
                 candle_closes: dict[datetime, Decimal] | None = None, recent_candles: int = 24):
        self.run = run
        self.limits = limits or RiskLimits()
        self.candle_closes = candle_closes if candle_closes is not None else {}
        self.books = self._new_books()
        self.at: datetime | None = None
        self.step_start: datetime | None = None  # the candle of the run's current step
        self.recent_starts: deque[datetime] = deque(maxlen=max(recent_candles, 1))
        self.orders: dict[uuid.UUID, OrderView] = {}
        self.bracket: Bracket | None = None
        self.decisions = 0
        self.orders_placed = 0
        self.orders_accepted = 0
        self.fills = 0
        self.halts = 0
        self.venue_prefix: str | None = None
        self.control_events: list[DomainEvent] = []
        self.halted = False
        self.halt_reason: str | None = None
        self.halted_at: datetime | None = None
        self.halted_by: str | None = None
        self.global_halted = False
        self.global_halt_reason: str | None = None
        self.incidents: dict[uuid.UUID, dict[str, Any]] = {}
        self.config_values: dict[str, str] = {}
        self.config_hash: str | None = run.config_hash if run else None
        self.config_changes = 0
        self.last_decision: dict[str, Any] | None = None
        self.last_candle_start: datetime | None = None
        # Account totals that survive a paper/live restart (the loop's own portfolio starts afresh).
        self.realized_total = ZERO
        self.fees_total = ZERO
        self.trades_total = 0
        self.wins_total = 0
        self.runs_started = 0
        self._counts_at_run_start = (0, 0, 0, 0)

    def _new_books(self) -> RunBook:
        return RunBook(limit_pct=self.limits.max_daily_loss_pct,
                       rapid_loss_window=timedelta(minutes=self.limits.rapid_loss_window_minutes),
                       keep_closed_days=False)

    def day_figures(self) -> DayFigures | None:
        """The run's figures of the day it stands in (None before its first event)."""
        return None if self.books.current is None else self.books.day_figures()

    def start_day(self, at: datetime) -> None:
        """The replayed day begins at ``at`` (00:00 UTC): the day before is closed."""
        self.books.roll(at)
        self.at = at

    def clone(self) -> ReplayBook:
        """An independent copy (the what-if and the recorded day start from the same state)."""
        return copy.deepcopy(self)

    # --- folding events --------------------------------------------------------------

    def apply(self, event: DomainEvent) -> None:
        """Fold one event into the state (events of other runs should not be given)."""
        name = type(event).__name__
        self.at = event.occurred_at
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, event)

    def _candle(self, e: Any) -> None:
        if self.run is not None and (e.product, e.granularity) != (self.run.product, self.run.granularity):
            return
        self.candle_closes.setdefault(e.start, e.close)
        if self.run is not None and e.run_id == self.run.run_id and name_of(e) == "CandleClosed":
            self.books.step(e.occurred_at, e.product, e.close)  # the run's own candle: its step
            self.step_start = e.start

    def _decision(self, e: Any) -> None:
        # One decision per candle step: the run's equity point (domain/run_book.py), after the candle's own
        # fills and halts and before anything the decision causes.
        at = e.occurred_at
        if self.run is not None and e.product == self.run.product and self.step_start != e.candle_start:
            close = self.candle_closes.get(e.candle_start)  # the run's candle was recorded before (not by it)
            if close is not None:
                self.books.step(at, e.product, close)
                self.step_start = e.candle_start
        self.last_candle_start = e.candle_start
        self.recent_starts.append(e.candle_start)
        self.decisions += 1
        self.books.decided(at)
        if name_of(e) == "DecisionMade":
            self.last_decision = {"id": str(e.originator_id), "at": at.isoformat(), "action": e.action.value,
                                  "size_pct": _s(e.size_pct), "rationale": e.rationale, "failed": False}
        else:
            self.last_decision = {"id": str(e.originator_id), "at": at.isoformat(), "action": "HOLD",
                                  "size_pct": "0", "rationale": f"{e.kind.value}: {e.detail}", "failed": True}

    def _run_started(self, e: Any) -> None:
        self.runs_started += 1
        self._counts_at_run_start = (self.decisions, self.orders_placed, self.fills, self.orders_accepted)
        if self.portfolio.deposited or self.portfolio.positions:
            # A live restart (application/trading/live_runner.py): new books with the positions carried over; its
            # cash is the run's own starting cash (the deposit that follows). Other modes start flat.
            carried = {p: pos for p, pos in self.portfolio.positions.items() if pos.is_held}
            marks = dict(self.marks)
            self.books = self._new_books()
            if e.mode.value == "live":
                self.portfolio.positions.update(carried)
                self.marks.update(marks)
            else:
                self.bracket = None
            self.step_start = None

    @property
    def run_counts(self) -> tuple[int, int, int, int]:
        """Decisions, orders placed, fills, orders accepted since the last RunStarted (the loop's and exchange's counters)."""
        base = self._counts_at_run_start
        return (self.decisions - base[0], self.orders_placed - base[1], self.fills - base[2],
                self.orders_accepted - base[3])

    def _deposit(self, e: Any) -> None:
        self.books.deposit(e.occurred_at, e.amount)

    def _withdraw(self, e: Any) -> None:
        self.books.withdraw(e.occurred_at, e.amount)

    def _risk(self, e: Any) -> None:
        if e.rule == "max_daily_loss":
            self.books.refused_for_daily_loss(e.occurred_at)

    def _order_placed(self, e: Any) -> None:
        self.orders_placed += 1
        view = OrderView(e.originator_id, e.product, e.side.value, e.order_type.value, e.quantity, e.stop_loss_price,
                         e.take_profit_price, e.decision_id, e.occurred_at, events=[e])
        self.orders[e.originator_id] = view
        held = self.portfolio.position(e.product).quantity
        # An order against the position is a CLOSE (the loop disarms the bracket first) or the exit
        # after a stop/take-profit trigger (the exchange dropped the bracket when it fired).
        if held and (held > 0) != (e.side is OrderSide.BUY) and self.bracket and self.bracket.product == e.product:
            self.bracket = None

    def _order_event(self, e: Any) -> None:
        view = self.orders.get(e.originator_id)
        if view is None:
            return
        name = name_of(e)
        view.events.append(e)
        if name == "OrderAccepted":
            self.orders_accepted += 1
            prefix, sep, _ = e.venue_order_id.rpartition("-order-")
            if sep:
                self.venue_prefix = prefix
        if name == "OrderReconciled":
            view.status = e.status.value
        elif name in _STATUS_AFTER:
            view.status = _STATUS_AFTER[name]
        if name == "FillDiscovered":
            view.status = "FILLED" if e.completed else "PARTIALLY_FILLED"
        if name in FILL_TYPES:
            self._fill(view, e)
        if not view.working:
            view.events = []  # only working orders are ever rebuilt

    def _fill(self, view: OrderView, e: Any) -> None:
        self.fills += 1
        view.filled = e.cumulative_quantity
        before = self.portfolio.position(view.product).quantity
        effect = self.books.fill(e.occurred_at, view.product, view.side, e.quantity, e.price, e.fee)
        self.realized_total += effect.realized_pnl
        self.fees_total += e.fee
        if effect.round_trip is not None:
            self.trades_total += 1
            self.wins_total += effect.round_trip.won
        after = self.portfolio.position(view.product).quantity
        # The exchanges' bracket rules (domain/brackets.py); the book holds one bracket, of any product.
        current = self.bracket if self.bracket and self.bracket.product == view.product else None
        bracket = bracket_after_fill(current, product=view.product, order_id=view.order_id, side=view.side,
                                     before=before, after=after, stop_loss_price=view.stop_loss_price,
                                     take_profit_price=view.take_profit_price, at=e.occurred_at)
        if bracket is not current:
            self.bracket = bracket

    def _control(self, e: Any) -> None:
        name = name_of(e)
        mine = self.run is not None and e.originator_id == self.run.control_id
        if mine:
            self.control_events.append(e)
        if name == "TradingHalted":
            if mine:
                self.halts += 1
                self.halted, self.halt_reason, self.halted_at, self.halted_by = True, e.reason, e.occurred_at, e.actor
                if e.run_id is not None and e.run_id == self.run.run_id:
                    self.books.halted(e.occurred_at)
            if e.originator_id == TRADING_CONTROL_ID:
                self.global_halted, self.global_halt_reason = True, e.reason
        elif name == "TradingResumed":
            if mine:
                self.halted, self.halt_reason = False, None
                if e.run_id is not None and e.run_id == self.run.run_id:
                    self.books.resumed(e.occurred_at)
                if self.halted_by == "risk" and e.actor == "risk":
                    self.portfolio.reset_loss_streak()  # what the loop does when its own halt lapses
            if e.originator_id == TRADING_CONTROL_ID:
                self.global_halted, self.global_halt_reason = False, None

    def _incident_opened(self, e: Any) -> None:
        self.incidents[e.originator_id] = {"id": str(e.originator_id), "severity": e.severity.value, "kind": e.kind,
                                           "details": e.details, "opened_at": e.occurred_at.isoformat(),
                                           "actor": e.actor}

    def _incident_resolved(self, e: Any) -> None:
        self.incidents.pop(e.originator_id, None)

    def _config_changed(self, e: Any) -> None:
        self.config_changes += 1
        if e.new_value is None:
            self.config_values.pop(e.path, None)
        else:
            self.config_values[e.path] = e.new_value
        self.config_hash = e.config_hash

    def _config_baseline(self, e: Any) -> None:
        self.config_values = dict(e.values) | {k: v for k, v in self.config_values.items() if k not in e.values}
        self.config_hash = e.config_hash

    # --- queries -----------------------------------------------------------------------

    def unrealized_pnl(self) -> Decimal:
        return self.books.unrealized_pnl()

    def daily_loss_pct(self) -> Decimal:
        return self.books.daily_loss_pct()

    @property
    def working_orders(self) -> list[OrderView]:
        return [o for o in self.orders.values() if o.working]

    def snapshot(self, full: bool = False) -> dict[str, Any]:
        """The state now, JSON-ready (Decimals as strings). ``full`` adds orders, incidents and config."""
        p = self.portfolio
        equity = self.equity()
        positions = []
        for product in sorted(p.positions):
            pos = p.positions[product]
            if not pos.is_held:
                continue
            mark = self.marks.get(product)
            positions.append({"product": product, "quantity": _s(pos.quantity), "average_entry": _s(_q(pos.average_entry)),
                              "mark": _s(mark), "unrealized_pnl": _s(_q(pos.unrealized_pnl(mark)) if mark else None)})
        loss = self.daily_loss_pct()
        # Without a run, the halt that matters is the operator's on the shared control stream.
        halted, reason = (self.halted, self.halt_reason) if self.run else (self.global_halted, self.global_halt_reason)
        state: dict[str, Any] = {
            "at": self.at.isoformat() if self.at else None,
            "position": positions,
            "cash": _s(_q(p.cash)),
            "equity": _s(_q(equity)),
            "realized_pnl": _s(_q(p.realized_pnl)),
            "fees": _s(_q(p.fees_paid)),
            "net_realized_pnl": _s(_q(p.net_realized_pnl)),
            "unrealized_pnl": _s(_q(self.unrealized_pnl())),
            "day_start_equity": _s(_q(self.day_start_equity)),
            "day_pnl": _s(_q(equity - self.day_start_equity) if self.day_start_equity is not None else None),
            "max_drawdown_pct": _s(self.books.max_drawdown_pct.quantize(_PCT)),
            "breaker_drawdown_pct": _s(_breaker_drawdown(self.books).quantize(_PCT)),
            "daily_loss_used_pct": _s(loss.quantize(_PCT)),
            "daily_loss_limit_pct": _s(self.limits.max_daily_loss_pct),
            "halted": halted,
            "halt_reason": reason,
            "open_orders": len(self.working_orders),
            "trades": p.trades,
            "consecutive_losses": p.consecutive_losses,
            "open_incidents": len(self.incidents),
            "config_hash": self.config_hash,
        }
        if full:
            state["orders"] = [{"order_id": str(o.order_id), "product": o.product, "side": o.side, "type": o.order_type,
                                "quantity": _s(o.quantity), "filled": _s(o.filled), "status": o.status,
                                "placed_at": o.placed_at.isoformat()} for o in self.working_orders]
            state["bracket"] = None if self.bracket is None else {
                "product": self.bracket.product, "stop_loss_price": _s(self.bracket.stop_loss_price),
                "take_profit_price": _s(self.bracket.take_profit_price), "armed_at": self.bracket.armed_at.isoformat()}
            state["incidents"] = list(self.incidents.values())
            state["trading_halted_globally"] = self.global_halted
            state["global_halt_reason"] = self.global_halt_reason
            state["halted_at"] = self.halted_at.isoformat() if self.halted and self.halted_at else None
            state["halted_by"] = self.halted_by if self.halted else None
            state["wins"] = p.wins
            figures = self.day_figures()
            state["day_max_drawdown_pct"] = None if figures is None else _s(figures.max_drawdown_pct.quantize(_PCT))
            state["day_figures"] = None if figures is None else day_figures_json(figures)
            state["last_decision"] = self.last_decision
            state["limits"] = {k: _s(v) if isinstance(v, Decimal) else v for k, v in vars(self.limits).items()}
            state["config_recorded"] = dict(sorted(self.config_values.items()))
            state["run"] = self.run.as_dict() if self.run else None
        return state


def day_figures_json(figures: DayFigures) -> dict[str, Any]:
    """The named day figures for people and tools: money to the cent, percentages to 0.0001."""
    return {"day": figures.day.isoformat(), **figures.shown(), "risk_level": figures.risk_level}


def _breaker_drawdown(books: RunBook) -> Decimal:
    """The fall the drawdown breaker measures now: from the peak since the run began or was last resumed."""
    peak, equity = books.breaker_peak, books.equity()
    return (peak - equity) / peak * 100 if peak is not None and peak > 0 and equity < peak else ZERO


def name_of(event: DomainEvent) -> str:
    return type(event).__name__


def _q(value: Decimal | None) -> Decimal | None:
    # Money for people: cents; the exact figures stay in the events.
    return None if value is None else value.quantize(CENT)


_HANDLERS = {
    "CandleClosed": ReplayBook._candle,
    "RunStarted": ReplayBook._run_started,
    "DecisionMade": ReplayBook._decision,
    "DecisionFailed": ReplayBook._decision,
    "FundsDeposited": ReplayBook._deposit,
    "FundsWithdrawn": ReplayBook._withdraw,
    "RiskAssessed": ReplayBook._risk,
    "OrderPlaced": ReplayBook._order_placed,
    **{name: ReplayBook._order_event for name in ORDER_TYPES - {"OrderPlaced"}},
    **{name: ReplayBook._control for name in CONTROL_TYPES},
    "IncidentOpened": ReplayBook._incident_opened,
    "IncidentResolved": ReplayBook._incident_resolved,
    "ConfigChanged": ReplayBook._config_changed,
    "ConfigBaselineSet": ReplayBook._config_baseline,
}

