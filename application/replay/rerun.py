"""Re-executing a recorded day: the real trading loop, seeded with the run's state at 00:00 UTC.

Used by ``--verify`` (same settings, the recorded decisions) and ``--what-if``
(changed settings, the recorded decisions or another strategy). The loop is
the production ``TradingLoop``; it writes into a throwaway store the caller
provides (never the real log), and is started not with ``start()`` (which
would record a new run and deposit) but from the state the log holds at the
start of the day: cash, positions, loss streak, working orders, the halt
state, the rapid-loss window, the id counter, and on the paper exchange the
position book, the armed stop loss / take profit and the fill counters.

Seeding sets attributes of ``TradingLoop`` that ``start()`` would set; a
public ``TradingLoop.resume_from(state)`` hook would make this less fragile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from application.ports import DecisionModel, ExchangeGateway
from application.replay.timeline import DayLog
from application.replay.book import CONTROL_TYPES, DECISION_TYPES, ReplayBook, name_of
from application.trading_app import TradingApplication
from application.trading.loop import DeterministicIds, LoopSettings, TradingLoop
from domain.control import RunMode
from domain.decision import DecisionContext, FailureKind, StrategyDecision, TradeAction
from domain.events import DomainEvent
from domain.market import Candle


class SeedableExchange(ExchangeGateway, Protocol):
    """What re-execution needs of the paper exchange to put it back where the run left it."""

    fill_count: int
    order_count: int

    def restore_position(self, product: str, quantity: Decimal) -> None: ...

    def arm(self, product: str, order_id: uuid.UUID, at: datetime, *, stop_loss_price: Decimal | None = None,
            take_profit_price: Decimal | None = None) -> Any: ...


class CapturingStore(Protocol):
    """A throwaway store that also hands back what was recorded into it."""

    recorded: list[DomainEvent]

    def record_in_order(self, events: list[DomainEvent]) -> None: ...


class RecordedDecisions:
    """A ``DecisionModel`` that answers each candle with the decision the log holds for it (no LLM call)."""

    def __init__(self, decisions: dict[datetime, DomainEvent], name: str):
        self.decisions = decisions
        self.name = name

    def decide(self, context: DecisionContext) -> StrategyDecision:
        e = self.decisions.get(context.candle.start)
        if e is None:
            return StrategyDecision(TradeAction(action="HOLD", size_pct=0, rationale="no recorded decision"),
                                    self.name, failure_kind=FailureKind.ERROR.value,
                                    failure_detail=f"no decision recorded for the candle of {context.candle.start}")
        common = dict(strategy=e.strategy, model=e.model, prompt_hash=e.prompt_hash, latency_ms=e.latency_ms)
        if name_of(e) == "DecisionFailed":
            return StrategyDecision(TradeAction(action=e.fallback_action, size_pct=0, rationale=e.detail[:200]),
                                    failure_kind=e.kind.value, failure_detail=e.detail, **common)
        action = TradeAction(action=e.action, size_pct=float(e.size_pct), rationale=e.rationale[:200],
                             take_profit_pct=None if e.take_profit_pct is None else float(e.take_profit_pct),
                             stop_loss_pct=None if e.stop_loss_pct is None else float(e.stop_loss_pct))
        return StrategyDecision(action, prompt_tokens=e.prompt_tokens, completion_tokens=e.completion_tokens,
                                cost=e.cost, cached=e.cached, inputs=dict(e.inputs), **common)


class NoIndicators:
    """Recorded decisions need no indicators."""

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        return {}


class WarmIndicators:
    """Incremental indicators warmed up on the candles before the day (for a what-if strategy)."""

    def __init__(self, state: Any, history: list[Candle]):
        self.state = state
        for candle in history:
            state.update(candle)

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        return self.state.update(candle)


@dataclass(frozen=True)
class DayInputs:
    """The day as the loop saw it: its candles (one per recorded decision) and the decisions."""

    candles: list[Candle]
    decisions: dict[datetime, DomainEvent]
    history: list[Candle]  # the product's candles before the day, oldest first
    step_ids: dict[datetime, int]  # candle start -> notification id of the recorded decision on it
    control: list[tuple[int, DomainEvent]]  # the day's events on the run's control stream, with their ids


def day_inputs(log: DayLog, history_limit: int = 1000) -> DayInputs:
    """The candles the run stepped through on the day (the loop decides once per candle)."""
    run = log.run
    if run is None:
        raise ValueError("no run to re-execute")
    decisions: dict[datetime, DomainEvent] = {}
    candles: list[Candle] = []
    step_ids: dict[datetime, int] = {}
    control = [(le.notification_id, le.event) for le in log.events
               if name_of(le.event) in CONTROL_TYPES and le.event.originator_id == run.control_id]
    for le in log.events:
        e = le.event
        if e.run_id == run.run_id and name_of(e) in DECISION_TYPES and e.candle_start not in decisions:
            decisions[e.candle_start] = e
            step_ids[e.candle_start] = le.notification_id
            c = log.candles.get(e.candle_start)
            if c is None:
                raise ValueError(f"the candle of {e.candle_start.isoformat()} that decision {e.originator_id} "
                                 "was made on is not in the log")
            candles.append(Candle(c.product, c.granularity, c.start, c.open, c.high, c.low, c.close, c.volume))
    first = candles[0].start if candles else log.day_start
    earlier = sorted((c for s, c in log.candles.items() if s < first), key=lambda c: c.start)[-history_limit:]
    history = [Candle(c.product, c.granularity, c.start, c.open, c.high, c.low, c.close, c.volume) for c in earlier]
    return DayInputs(candles, decisions, history, step_ids, control)


def recorded_venue_prefix(log: DayLog) -> str | None:
    """The prefix of the venue ids the run's exchange gave (``paper-1a2b3c4d`` of ``paper-1a2b3c4d-order-7``)."""
    rid = log.run.run_id if log.run else None
    for le in (*log.before, *log.events):
        e = le.event
        if e.run_id == rid and name_of(e) == "OrderAccepted":
            prefix, sep, _ = e.venue_order_id.rpartition("-order-")
            if sep:
                return prefix
    return None


@dataclass
class Rerun:
    """What a re-execution produced."""

    events: list[DomainEvent]
    ids_comparable: bool  # the run's ids are the loop's deterministic ones, so replayed ids can be compared
    start: ReplayBook  # the seeded state at day start


def rerun_day(
    log: DayLog,
    start: ReplayBook,
    inputs: DayInputs,
    *,
    settings: LoopSettings,
    exchange: SeedableExchange,
    strategy: DecisionModel,
    store: TradingApplication,
    indicators: Any = None,
    captured: Callable[[], list[DomainEvent]],
) -> Rerun:
    """Run the loop over the day's candles from the recorded start state; return the events it recorded."""
    run = log.run
    assert run is not None
    mode = RunMode(run.mode) if run.mode in {m.value for m in RunMode} else RunMode.BACKTEST
    decisions, orders, _, _ = start.run_counts
    ids = DeterministicIds(run.run_id)
    ids.count = decisions + orders
    ids_comparable = _deterministic(log, run.run_id, ids.count)
    loop = TradingLoop(store, exchange, strategy, indicators or NoIndicators(), settings, run.run_id, ids, mode)
    _seed(loop, exchange, start, inputs, settings)
    # Paper and live runners re-read the shared control stream before each candle (an operator may halt
    # or resume): give the loop what the log held at that point of the day.
    refresh = getattr(loop, "refresh_control", None) if mode is not RunMode.BACKTEST else None
    control_events = list(start.control_events)
    known = {e.originator_version for e in control_events}
    pending = [(nid, e) for nid, e in inputs.control if e.originator_version not in known]
    for candle in inputs.candles:
        if refresh is not None and pending and pending[0][0] < inputs.step_ids.get(candle.start, 0):
            step_id = inputs.step_ids[candle.start]
            while pending and pending[0][0] < step_id:
                control_events.append(pending.pop(0)[1])
            refresh(_rebuild(control_events))
        loop.step(candle)
    loop.flush()
    return Rerun(captured(), ids_comparable, start)


def _deterministic(log: DayLog, run_id: uuid.UUID, count: int) -> bool:
    for e in log.run_day_events():
        if name_of(e) in DECISION_TYPES:
            return e.originator_id == uuid.uuid5(run_id, str(count + 1))
    return True


def _rebuild(events: list[DomainEvent]) -> Any:
    aggregate = None
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


# The loop state start() sets up and a mid-run start must put back (see the module docstring).
SEEDED_LOOP_STATE = ("book", "open_orders", "_order_decisions", "_recent", "_control", "summary")


def _seed(loop: TradingLoop, exchange: SeedableExchange, book: ReplayBook, inputs: DayInputs,
          settings: LoopSettings) -> None:
    missing = [name for name in SEEDED_LOOP_STATE if not hasattr(loop, name)]
    if missing or not hasattr(loop.ids, "count"):
        raise RuntimeError(f"TradingLoop no longer has {', '.join(missing) or 'ids.count'}: "
                           "application/replay/rerun.py must seed the loop's new state")
    loop.book = book.clone().books  # the run's books as recorded up to the first step (domain/run_book.py)
    loop.book.limit_pct = settings.limits.max_daily_loss_pct
    loop.open_orders = {o.order_id: _rebuild(o.events) for o in book.working_orders if o.events}
    loop._order_decisions = {oid: o.decision_id for oid, o in book.orders.items()}
    loop._recent.extend(inputs.history[-settings.candles_in_context:])
    loop.book.rapid_loss_window = timedelta(minutes=settings.limits.rapid_loss_window_minutes)
    loop._control_id = book.run.control_id
    loop._control = _rebuild(book.control_events) if book.control_events else None
    loop.summary.initial_equity = book.equity()
    _, _, exchange.fill_count, exchange.order_count = book.run_counts
    for product, position in book.portfolio.positions.items():
        if position.is_held:
            exchange.restore_position(product, position.quantity)
    b = book.bracket
    if b is not None and book.portfolio.position(b.product).is_held:
        exchange.arm(b.product, b.order_id, b.armed_at, stop_loss_price=b.stop_loss_price,
                     take_profit_price=b.take_profit_price)
