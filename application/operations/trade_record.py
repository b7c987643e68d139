"""What was traded, from the log: fills, closed round trips and decisions, by run.

Fills are folded per run through the domain's ``Portfolio`` from the run's first fill, so a
round trip that opened before a period and closed inside it has its real P&L; the figures of a
period are the effects of the fills that happened inside it. Used by ``tradecore logs analyze``
(the period's trades and P&L) and by the trade-success-rate alert (the last N closed trades).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from eventsourcing.utils import get_topic

from application.trading_app import TradingApplication
from domain.accounting import Portfolio
from domain.control import RunStarted
from domain.decision import DecisionFailed, DecisionMade
from domain.order import FillDiscovered, OrderFilled, OrderPartiallyFilled, OrderPlaced

ZERO = Decimal(0)
TOPICS = tuple(get_topic(c) for c in (RunStarted, OrderPlaced, OrderFilled, OrderPartiallyFilled, FillDiscovered,
                                      DecisionMade, DecisionFailed))


@dataclass(frozen=True)
class ClosedTrade:
    """One round trip (flat -> open -> flat) of a run."""

    run_id: uuid.UUID
    mode: str
    product: str
    closed_at: datetime
    net_pnl: Decimal

    @property
    def won(self) -> bool:
        return self.net_pnl > 0


@dataclass
class TradeRecord:
    """The period's figures: fills, round trips, realized P&L and fees, decisions by action."""

    fills: int = 0
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    trades: list[ClosedTrade] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)
    runs: dict[str, str] = field(default_factory=dict)  # run id -> mode, of the runs active in the period

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def wins(self) -> int:
        return sum(1 for t in self.trades if t.won)


def trade_record(store: TradingApplication, since: datetime | None = None, until: datetime | None = None,
                 modes: tuple[str, ...] | None = None) -> TradeRecord:
    """Fold the log's runs, orders, fills and decisions; keep what happened in [since, until).

    ``modes`` limits the runs (e.g. ``("paper", "live")``); None keeps every mode.
    """
    record = TradeRecord()
    run_modes: dict[uuid.UUID, str] = {}
    portfolios: dict[uuid.UUID, Portfolio] = {}
    orders: dict[uuid.UUID, tuple[str, str]] = {}

    def inside(at: datetime) -> bool:
        return (since is None or at >= since) and (until is None or at < until)

    for logged in store.iter_log(topics=TOPICS):
        event = logged.event
        if isinstance(event, RunStarted):
            run_modes[event.originator_id] = event.mode.value
            continue
        mode = run_modes.get(event.run_id)
        if mode is None or (modes is not None and mode not in modes):
            continue
        if isinstance(event, OrderPlaced):
            orders[event.originator_id] = (event.product, event.side.value)
        elif isinstance(event, (OrderFilled, OrderPartiallyFilled, FillDiscovered)):
            placed = orders.get(event.originator_id)
            if placed is None:
                continue
            portfolio = portfolios.setdefault(event.run_id, Portfolio())
            effect = portfolio.apply_fill(placed[0], placed[1], event.quantity, event.price, event.fee)
            if not inside(event.occurred_at):
                continue
            record.fills += 1
            record.realized_pnl += effect.realized_pnl
            record.fees += event.fee
            record.runs[str(event.run_id)] = mode
            if effect.round_trip is not None:
                record.trades.append(ClosedTrade(event.run_id, mode, placed[0], event.occurred_at,
                                                 effect.round_trip.net_pnl))
        elif isinstance(event, (DecisionMade, DecisionFailed)) and inside(event.occurred_at):
            action = "FAILED" if isinstance(event, DecisionFailed) else event.action.value
            record.decisions[action] += 1
            record.runs[str(event.run_id)] = mode
    return record


def success_rate(trades: list[ClosedTrade], window: int) -> tuple[Decimal | None, int]:
    """(% of winners among the last ``window`` closed trades, how many were judged); None below ``window``."""
    recent = trades[-window:]
    if len(recent) < window:
        return None, len(recent)
    wins = sum(1 for t in recent if t.won)
    return (Decimal(wins) * 100 / Decimal(len(recent))).quantize(Decimal("0.01")), len(recent)
