"""The trading loop: candle -> indicators -> strategy -> risk -> orders -> fills.

One loop serves backtest, paper and live; only the clock, the candle feed, the
indicator source and the exchange differ. Every step is an event, made by an
aggregate (so its rules are checked) and appended in the order it happened.

State the loop decides from (portfolio, open orders, halts, the trading day)
is write-side state kept in step with the events it records, never the read
model. Events are buffered and appended in one transaction per ``flush``:
every candle in paper and live mode (before anything reaches a real venue
the order is already in the log), every ``flush_every`` candles in a
backtest, where the exchange is in memory (at least 25,000 when the rules
run over recorded candles: application/trading/quiet_candles.py, which
advances the loop only where something can happen and buffers its HOLDs
as one batch of columns, ``hold_batch``).
"""

from __future__ import annotations

import uuid
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from application.ports import DecisionModel, ExchangeGateway, ExecutionReport, IdSource, OrderRequest, ReportKind
from application.trading.halts import Breakers
from application.trading.terms import (  # noqa: F401  (re-exported: where callers have always found them)
    IndicatorSource, LoopSettings, RunSummary, _clean,
)
from application.trading_app import TradingApplication
from domain.account import Account
from domain.control import TRADING_CONTROL_ID, Run, RunMode, TradingControl, bot_control_id, run_control_id
from domain.decision import DecisionContext, Decision, StrategyDecision, TradeAction, TradeActionKind
from domain.events import DomainEvent, EventMeta
from domain.ids import DeterministicIds  # noqa: F401  (re-exported: callers build a run's ids here)
from domain.market import Candle, CandleRecord, candle_id
from domain.order import Order, OrderSide, OrderType
from domain.product import check_minimums, protective_rounding
from domain.event_columns import ColumnBatch
from domain.hold_decisions import HoldDecisions
from domain.refused_entries import EntryDecisions, RiskRefusals
from domain.risk import RiskState, assess, min_order_refusal, position_size
from domain.risk_terms import RiskVerdict
from domain.run_book import RunBook

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class TradingLoop(Breakers):
    """Drives one run; call ``start``, then ``step`` per closed candle, then ``finish``."""

    def __init__(self, store: TradingApplication, exchange: ExchangeGateway, strategy: DecisionModel,
                 indicators: IndicatorSource, settings: LoopSettings, run_id: uuid.UUID, ids: IdSource,
                 mode: RunMode | str = RunMode.BACKTEST, record_candles: bool = True):
        """``record_candles=False``: the candles are already in the log (a backtest reads them from it),
        so ``step`` records no CandleClosed; paper and live record each candle as it closes."""
        self.record_candles = record_candles
        self.store = store
        self.exchange = exchange
        self.strategy = strategy
        self.indicators = indicators
        self.settings = settings
        self.run_id = run_id
        self.ids = ids
        self.mode = RunMode(mode)
        self.book = RunBook(limit_pct=settings.limits.max_daily_loss_pct,
                            rapid_loss_window=timedelta(minutes=settings.limits.rapid_loss_window_minutes),
                            keep_closed_days=False)
        self.summary = RunSummary()
        self.open_orders: dict[uuid.UUID, Order] = {}
        self._order_decisions: dict[uuid.UUID, uuid.UUID | None] = {}
        self._pending: list[DomainEvent] = []
        self._recent: deque[Candle] = deque(maxlen=max(settings.candles_in_context, 1))
        self._since_flush = 0
        self._run: Run | None = None
        self._control: TradingControl | None = None  # this run's own stream: its bot's (or a backtest's)
        self._fleet: TradingControl | None = None  # the stream every bot obeys (``halt --all``)

    @property
    def portfolio(self):
        """Cash and positions of the run (``domain.accounting.Portfolio``, inside the run book)."""
        return self.book.portfolio

    # --- recording -------------------------------------------------------------

    def _meta(self, at: datetime, actor: str = "system", correlation: uuid.UUID | None = None,
              causation: uuid.UUID | None = None) -> EventMeta:
        return EventMeta(at, actor, correlation, causation, self.run_id)

    def _take(self, aggregate: Any) -> list[DomainEvent]:
        events = aggregate.collect_events()
        self._pending.extend(events)
        return events

    def flush(self) -> None:
        """Append the buffered events, in order, in one transaction."""
        if self._pending:
            self.store.record_in_order(self._pending)
            self.summary.events += sum(len(e) if isinstance(e, ColumnBatch) else 1 for e in self._pending)
            self._pending = []
        self._since_flush = 0

    def hold_batch(self, inputs: dict[str, Any]) -> HoldDecisions:
        """The batch of HOLD decisions at the end of the buffer (a new one when an event came last); a
        backtest's fast path (application/trading/quiet_candles.py) adds its quiet candles' HOLDs to it."""
        last = self._pending[-1] if self._pending else None
        if type(last) is not HoldDecisions or last.inputs is not inputs:
            last = HoldDecisions(self.run_id, self.strategy.name, self.settings.product, inputs)
            self._pending.append(last)
        return last

    # --- the run ---------------------------------------------------------------------

    def start(self, at: datetime, initial_balance: Decimal, config_hash: str, code_version: str,
              data_from: datetime | None = None, data_to: datetime | None = None) -> None:
        """Record RunStarted and, for a fresh paper/backtest account, its starting balance."""
        meta = self._meta(at, correlation=self.run_id)
        self._run = Run.begin(
            self.run_id, meta, mode=self.mode, product=self.settings.product, granularity=self.settings.granularity,
            strategy=self.strategy.name, config_hash=config_hash, code_version=code_version, initial_balance=initial_balance,
            data_from=data_from, data_to=data_to, bot_id=self.settings.bot_id, process=self.settings.process,
        )
        self._take(self._run)
        if self.mode is RunMode.BACKTEST:
            self._control_id = run_control_id(self.run_id)
            self._control = None  # a backtest starts unhalted, on its own control stream
        else:  # a bot's own halts on its stream; it also obeys the one every bot shares
            self._control_id = bot_control_id(self.settings.bot_id) if self.settings.bot_id else TRADING_CONTROL_ID
            self._control = self.store.get_trading_control(self._control_id)
            self._fleet = self.store.get_trading_control() if self.settings.bot_id else None
        account = Account.open_account(f"run-{self.run_id}", self.settings.quote_currency, meta)
        account.deposit(initial_balance, meta)
        self._take(account)
        self.book.deposit(at, initial_balance)
        self.summary.initial_equity = initial_balance
        self.flush()

    def finish(self, at: datetime, status: str = "completed", reason: str = "end of data") -> RunSummary:
        """Record RunEnded and return the summary (open positions stay open, marked to the last close)."""
        assert self._run is not None, "start() first"
        self._run.end(status, reason, self._meta(at, correlation=self.run_id))
        self._take(self._run)
        self.flush()
        self.summary.trades = self.portfolio.trades
        self.summary.wins = self.portfolio.wins
        self.summary.realized_pnl = self.portfolio.realized_pnl
        self.summary.fees = self.portfolio.fees_paid
        self.summary.final_equity = self.book.equity()
        self.summary.max_drawdown_pct = self.book.max_drawdown_pct
        return self.summary

    # --- one candle ----------------------------------------------------------------------

    def step(self, candle: Candle) -> StrategyDecision:
        """Everything the loop does on one closed candle."""
        return self.decide(candle, self.advance(candle))

    def advance(self, candle: Candle) -> Decimal:
        """The candle's part before the decision: record it (paper, live), mark, fills and triggers, the
        equity point, the breakers; returns the equity the decision is made at."""
        at = candle.end
        if self.record_candles:
            self._pending.append(CandleRecord.closed_event(
                candle, EventMeta(at, "market", None, None, self.run_id),
                candle_id(candle.product, candle.granularity, candle.start),
            ))
        self.summary.candles += 1
        self._recent.append(candle)
        self.book.step(at, candle.product, candle.close)
        for report in self.exchange.on_candle(candle):
            self._apply_report(report, candle)
        equity = self.book.decided(at)  # the run's equity point: after the candle's fills, before deciding
        self._check_halts(at, equity)
        return equity

    def decide(self, candle: Candle, equity: Decimal) -> StrategyDecision:
        """The strategy's decision on the candle at ``equity``, recorded, and what it causes."""
        at = candle.end
        values = self.indicators.on_candle(candle)
        position = self.portfolio.position(self.settings.product)
        context = DecisionContext(
            product=self.settings.product, candle=candle, indicators=values, recent_candles=list(self._recent),
            position_quantity=position.quantity, position_average_entry=position.average_entry,
            equity=equity, cash=self.portfolio.cash,
        )
        decided = self.strategy.decide(context)
        decision_id = self.ids.new_id()
        decision = self._record_decision(decision_id, decided, candle, at)
        action = decided.action
        if not decided.failure_kind and action.action is not TradeActionKind.HOLD:
            self._act(decision, action, candle, equity, at)
        self.candle_done()
        return decided

    def candle_done(self, count: int = 1) -> None:
        """Count candles towards the next flush (every ``flush_every`` candles)."""
        self._since_flush += count
        if self._since_flush >= self.settings.flush_every:
            self.flush()

    @property
    def flush_room(self) -> int:
        """How many more candles the buffer takes before the next flush."""
        return max(self.settings.flush_every - self._since_flush, 1)

    def _record_decision(self, decision_id: uuid.UUID, decided: StrategyDecision, candle: Candle, at: datetime) -> Decision:
        meta = EventMeta(at, f"strategy:{decided.strategy}", decision_id, None, self.run_id)
        decision = Decision.of(decision_id, meta, decided, candle.product, candle.start, _clean(decided.inputs))
        self._take(decision)
        self.summary.decisions += 1
        return decision

    def verdict_on(self, action: TradeAction, candle: Candle, equity: Decimal) -> tuple[TradeAction, RiskVerdict, Decimal]:
        """Risk's verdict on ``action`` at the candle's close and ``equity`` (pure: nothing recorded or changed):
        the action as judged (the default stop-loss added to an entry without one), the verdict, the entry's
        quantity (0 unless an entry is approved)."""
        s = self.settings
        at = candle.end
        if action.action in (TradeActionKind.LONG, TradeActionKind.SHORT) and action.stop_loss_pct is None \
                and s.default_stop_loss_pct is not None:
            action = action.model_copy(update={"stop_loss_pct": float(s.default_stop_loss_pct)})
        position = self.portfolio.position(s.product)
        state = RiskState(
            now=at, equity=equity, cash=self.portfolio.cash, day_start_equity=self.book.day_start_equity,
            open_positions=self.book.open_positions, position_quantity=position.quantity,
            exposure=self.book.exposure(),
            consecutive_losses=self.portfolio.consecutive_losses, recent_equity=tuple(self.book.recent_equity),
            halted=bool(self._halt and self._halt.halted), halted_at=self._halt.halted_at if self._halt else None,
            daily_loss_breached_on=self.book.daily_loss_breached_on,
            position_notional=abs(position.quantity * candle.close), leverage=s.leverage,
        )
        verdict = assess(action, state, s.limits)
        quantity = ZERO
        if verdict.approved and verdict.approved_size_pct > 0 and action.action is not TradeActionKind.CLOSE:
            quantity = position_size(equity, candle.close, verdict.approved_size_pct, s.leverage, s.base_increment)
            below = check_minimums(quantity, candle.close, s.spec) if s.spec is not None else None
            if below is not None:  # on the product's size grid the entry is too small: a refusal, not an error
                verdict = min_order_refusal(verdict, action.action.value, below, {"quantity": quantity})
        return action, verdict, quantity

    @staticmethod
    def records_only(verdict: RiskVerdict) -> bool:
        """Whether recording ``verdict`` is all the loop does with it: a refusal that no rule acts on (the daily
        loss rule's refusal marks the book's day)."""
        return not verdict.approved and verdict.rule != "max_daily_loss"

    def record_refused_entry(self, decision_id: int, candle: Candle, row: int, inputs: dict[str, Any],
                             position_quantity: str, action: TradeAction, verdict: RiskVerdict) -> None:
        """An entry risk refused with nothing else to do (``records_only``), as ``decide`` records it, into
        column batches (domain/refused_entries.py): its DecisionMade (``inputs`` at ``row`` and the position) and
        the RiskAssessed refusing it. A backtest's fast path (application/trading/quiet_candles.py) calls it."""
        entry = EntryDecisions(self.run_id, self.strategy.name, self.settings.product, inputs, action)
        entry.add(decision_id, candle.end, candle.start, row, position_quantity, action.rationale)
        refusal = RiskRefusals(self.run_id, verdict)
        refusal.add(decision_id, candle.end)
        self._pending += (entry, refusal)
        self.summary.decisions += 1

    def _act(self, decision: Decision, action: TradeAction, candle: Candle, equity: Decimal, at: datetime) -> None:
        s = self.settings
        action, verdict, quantity = self.verdict_on(action, candle, equity)
        position = self.portfolio.position(s.product)
        meta = self._meta(at, actor="risk", correlation=decision.id)
        decision.assess(meta, **verdict.event_fields())
        (assessed,) = self._take(decision)
        if verdict.rule == "max_daily_loss":
            self.book.refused_for_daily_loss(at)
        if not verdict.approved or (verdict.approved_size_pct <= 0 and action.action is not TradeActionKind.CLOSE):
            return
        if action.action is TradeActionKind.CLOSE:
            quantity = abs(position.quantity)
            if quantity <= 0:
                return
            side = OrderSide.SELL if position.quantity > 0 else OrderSide.BUY
            self.exchange.disarm(s.product)
            self._place(decision.id, side, quantity, candle.close, at, assessed.event_id)
            return
        if quantity <= 0:
            return
        long = action.action is TradeActionKind.LONG
        take_profit = action.take_profit_pct if action.take_profit_pct is not None else (
            float(s.default_take_profit_pct) if s.default_take_profit_pct is not None else None)
        # Protective prices on the product's price grid, rounded toward the entry (never worse for the account).
        stop = _price_off(candle.close, action.stop_loss_pct, down=long, increment=s.quote_increment,
                          rounding=protective_rounding(long, "stop_loss"))
        target = _price_off(candle.close, take_profit, down=not long, increment=s.quote_increment,
                            rounding=protective_rounding(long, "take_profit"))
        self._place(decision.id, OrderSide.BUY if long else OrderSide.SELL, quantity, candle.close, at,
                    assessed.event_id, stop, target)

    def _place(self, decision_id: uuid.UUID | None, side: OrderSide, quantity: Decimal, reference: Decimal,
               at: datetime, causation: uuid.UUID | None, stop: Decimal | None = None,
               target: Decimal | None = None) -> None:
        order_id = self.ids.new_id()
        meta = self._meta(at, correlation=decision_id, causation=causation)
        order = Order.place(order_id, meta, product=self.settings.product, side=side, order_type=OrderType.MARKET,
                            quantity=quantity, stop_loss_price=stop, take_profit_price=target, decision_id=decision_id,
                            bot_id=self.settings.bot_id)
        order.submit(meta)
        self._take(order)
        self.open_orders[order_id] = order
        self._order_decisions[order_id] = decision_id
        self.summary.orders += 1
        request = OrderRequest(order_id, order.client_order_id, order.product, side, OrderType.MARKET, quantity,
                               stop_loss_price=stop, take_profit_price=target)
        if self.mode is not RunMode.BACKTEST:
            self.flush()  # a real (or paper) venue hears of the order only once the log holds it
        for report in self.exchange.submit(request, reference, at):
            self._apply_report(report, None)

    def _apply_report(self, report: ExecutionReport, candle: Candle | None) -> None:
        kind = report.kind
        if kind in (ReportKind.STOP_TRIGGERED, ReportKind.TAKE_PROFIT_TRIGGERED):
            self._exit_on_trigger(report)
            return
        order = self.open_orders.get(report.order_id)
        if order is None:
            raise LookupError(f"exchange reported {kind.value} for order {report.order_id} this run does not hold")
        meta = self._meta(report.occurred_at, actor="exchange", correlation=order.decision_id)
        if kind is ReportKind.ACCEPTED:
            order.accept(meta, report.venue_order_id or "")
        elif kind is ReportKind.REJECTED:
            order.reject(meta, report.reason)
            self.summary.rejected += 1
        elif kind is ReportKind.FILL:
            if order.fill(meta, fill_id=report.fill_id, quantity=report.quantity, price=report.price, fee=report.fee,
                          fee_currency=report.fee_currency, liquidity=report.liquidity):
                self.book.fill(report.occurred_at, order.product, order.side, report.quantity, report.price, report.fee)
                self.summary.fills += 1
        elif kind is ReportKind.CANCELLED:
            order.cancel(meta, report.reason or "cancelled")
        elif kind is ReportKind.EXPIRED:
            order.expire(meta, report.reason or "expired")
        self._take(order)
        if not order.is_working:
            del self.open_orders[order.id]

    def _exit_on_trigger(self, report: ExecutionReport) -> None:
        position = self.portfolio.position(self.settings.product)
        if position.quantity == 0:
            return
        side = OrderSide.SELL if position.quantity > 0 else OrderSide.BUY
        decision_id = self._order_decisions.get(report.order_id)
        self._place(decision_id, side, abs(position.quantity), report.trigger_price or report.price, report.occurred_at, None)

    # --- paper and live: what the runner feeds in between candles -----------------------

    def warm(self, candles: list[Candle]) -> None:
        """Candles before the run (history fetched at start): context and mark only, no decisions."""
        for candle in candles:
            self._recent.append(candle)
            self.book.mark(candle.product, candle.close)

    def restore(self, positions: dict[str, Any], orders: list[Order],
                decisions: dict[uuid.UUID, uuid.UUID | None] | None = None) -> None:
        """Carry open positions (``domain.accounting.Position``) and working orders of earlier runs into this one.

        Positions change no cash: the run's cash is what it started with (the venue's balance live).
        """
        for product, position in positions.items():
            if position.is_held:
                self.portfolio.positions[product] = position
        for order in orders:
            self.open_orders[order.id] = order
            self._order_decisions[order.id] = (decisions or {}).get(order.id, order.decision_id)

    def apply_reports(self, reports: list[ExecutionReport]) -> int:
        """Apply what the venue reported between candles (late fills, cancels); returns how many applied."""
        applied = 0
        for report in reports:
            if report.kind not in (ReportKind.STOP_TRIGGERED, ReportKind.TAKE_PROFIT_TRIGGERED) \
                    and report.order_id not in self.open_orders:
                continue  # an order this run no longer holds (already terminal)
            self._apply_report(report, None)
            applied += 1
        self.flush()
        return applied

    def cancel_all(self, at: datetime) -> list[ExecutionReport]:
        """The emergency stop: cancel every open order at the venue and record what it says."""
        reports = self.exchange.cancel_all(at)
        self.apply_reports(reports)
        return reports


def _price_off(price: Decimal, pct: float | None, *, down: bool, increment: Decimal, rounding: str) -> Decimal | None:
    """``price`` moved ``pct`` percent down (or up), on the grid of ``increment``, rounded ``rounding``."""
    if pct is None or pct <= 0:
        return None
    factor = Decimal(repr(pct)) / HUNDRED
    moved = price * (1 - factor) if down else price * (1 + factor)
    rounded = ((moved / increment).to_integral_value(rounding=rounding) * increment).quantize(increment)
    return rounded if rounded > 0 else None
