"""Paper and live runs: the trading loop on live candles until stopped.

A run, in order:

1. warms indicators and the loop's context on recent candles from the venue;
2. records ``RunStarted`` (and the run's starting cash: the configured paper
   balance, or the venue's quote balance live);
3. rebuilds what earlier runs of the same mode left from the log and reconciles
   it with the venue (application/trading/reconciliation.py), carrying open positions
   and working orders into this run;
4. reads the operator's controls (``ControlWatch``): a halt blocks new entries,
   a cancel-all (a P0 halt records one) cancels every open order at the venue,
   including one recorded while no process ran;
5. starts the background services (the health monitor's seam) and the candle
   feed, then steps the loop on each closed candle; between candles, every
   ``tick_seconds``, it polls the controls and the venue (late fills, cancels);
6. on a stop request (Ctrl-C, SIGTERM) or an error, stops the feed and the
   services and records ``RunEnded`` (stopped, or failed with the error).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from application.operations.controls import ControlWatch
from application.ports import Clock, DecisionModel, ExchangeGateway, IdSource, OrderRequest, VenueAccount, VenueError
from application.trading.reconciliation import (
    Reconciliation,
    close_abandoned_runs,
    open_positions,
    protecting_entry,
    rebuild_book,
    reconcile_live,
    reconcile_paper,
)
from application.trading.loop import IndicatorSource, LoopSettings, RunSummary, TradingLoop
from application.trading.run_end import end_run_anyway
from application.trading_app import TradingApplication
from domain.control import RunMode
from domain.events import EventMeta
from domain.market import Candle

log = logging.getLogger("tradecore.run")


class LiveCandles(Protocol):
    """Closed candles as they close (infrastructure/venues/coinbase/market_data.py CandleStream)."""

    def start(self, after: datetime) -> None: ...

    def next_closed(self, timeout: float) -> Candle | None: ...

    def stop(self) -> None: ...


class BackgroundService(Protocol):
    """Something that runs beside the loop (the REST API, the health monitor)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class RunReport:
    """What the run did: the loop's summary, reconciliation, and why it ended."""

    run_id: uuid.UUID
    summary: RunSummary
    reconciliation: Reconciliation
    status: str = "stopped"
    reason: str = ""
    notes: list[str] = field(default_factory=list)


class LiveRunner:
    """One paper or live run (see the module doc)."""

    def __init__(
        self,
        store: TradingApplication,
        *,
        mode: RunMode | str,
        exchange: ExchangeGateway,
        candles: LiveCandles,
        history: Callable[[], list[Candle]],
        strategy: DecisionModel,
        indicators: IndicatorSource,
        settings: LoopSettings,
        clock: Clock,
        ids: IdSource,
        config_hash: str,
        code_version: str,
        initial_balance: Decimal | None = None,
        venue: VenueAccount | None = None,
        run_id: uuid.UUID | None = None,
        tick_seconds: float = 1.0,
        services: list[BackgroundService] | None = None,
        on_event: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.mode = RunMode(mode)
        if self.mode is RunMode.BACKTEST:
            raise ValueError("a backtest runs with application/trading/backtest.py, not the live runner")
        if self.mode is RunMode.LIVE and venue is None:
            raise ValueError("a live run needs the venue's account (open orders, fills, balances)")
        self.exchange = exchange
        self.candles = candles
        self.history = history
        self.strategy = strategy
        self.indicators = indicators
        self.settings = settings
        self.clock = clock
        self.ids = ids
        self.config_hash = config_hash
        self.code_version = code_version
        self.initial_balance = initial_balance
        self.venue = venue
        self.run_id = run_id or ids.new_id()
        self.tick_seconds = tick_seconds
        self.services: list[BackgroundService] = list(services or [])
        self.say = on_event or (lambda text: log.info("%s", text))
        self.loop: TradingLoop | None = None
        self.watch: ControlWatch | None = None
        self._last_start: datetime | None = None
        self._cancel_pending = False

    def _meta(self, actor: str = "reconciliation") -> EventMeta:
        return EventMeta(self.clock.now(), actor, self.run_id, None, self.run_id)

    # --- the run -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> RunReport:
        """Run until ``stop`` is set; always records RunEnded once RunStarted is recorded."""
        s = self.settings
        warm = self.history()
        if warm:
            self.store.record_candles(warm, EventMeta(warm[-1].end, "market", None, None, self.run_id))
            for candle in warm:
                self.indicators.on_candle(candle)
            self._last_start = warm[-1].start
        self.say(f"warmed up on {len(warm)} {s.product} {s.granularity} candle(s)")
        starting_cash = self._starting_cash()
        loop = self.loop = TradingLoop(self.store, self.exchange, self.strategy, self.indicators, s, self.run_id,
                                       self.ids, self.mode)
        loop.warm(warm)
        loop.start(self.clock.now(), starting_cash, self.config_hash, self.code_version)
        self.say(f"run {self.run_id} started ({self.mode.value}, {s.product} {s.granularity}, cash {starting_cash})")
        report = RunReport(self.run_id, loop.summary, Reconciliation())
        started_services: list[BackgroundService] = []
        feed_started = False
        status, reason = "stopped", "stop requested"
        try:
            report.reconciliation = self._reconcile(loop)
            self.say(f"reconciliation: {report.reconciliation.summary()}")
            self.watch = ControlWatch(self.store, lambda: self._cancel_all(loop), bot=self.settings.bot_id)
            loop.refresh_control(self.watch.poll(), self.watch.fleet)
            if self.watch.halted:
                self.say(f"trading is halted: {self.watch.halt.halt_reason} (no new entries until resumed)")
            for service in self.services:
                service.start()
                started_services.append(service)
            after = warm[-1].end if warm else self.clock.now()
            self.candles.start(after)
            feed_started = True
            while not stop.is_set():
                candle = self.candles.next_closed(timeout=self.tick_seconds)
                loop.refresh_control(self.watch.poll(), self.watch.fleet)
                if self._cancel_pending:
                    self._cancel_all(loop)
                if candle is not None:
                    if self._last_start is not None and candle.start <= self._last_start:
                        continue  # seen already (a backfill overlapping what we have)
                    self._last_start = candle.start
                    decided = loop.step(candle)
                    self.say(f"{candle.start.isoformat()} close {candle.close}: {decided.action.action.value}")
                    continue
                poll = getattr(self.exchange, "poll", None)
                if poll is not None:
                    loop.apply_reports(poll(self.clock.now()))
        except BaseException as exc:
            status, reason = ("stopped", "interrupted") if isinstance(exc, KeyboardInterrupt) \
                else ("failed", f"{type(exc).__name__}: {exc}"[:300])
            self._finish(loop, started_services, feed_started, status, reason, report)
            raise
        self._finish(loop, started_services, feed_started, status, reason, report)
        return report

    def _cancel_all(self, loop: TradingLoop) -> list:
        """The operator's cancel-all; a venue failure keeps it pending and it is tried again every tick."""
        try:
            reports = loop.cancel_all(self.clock.now())
        except VenueError as exc:
            self._cancel_pending = True
            self.say(f"cancel-all failed at the venue ({exc}); trying again")
            return []
        self._cancel_pending = False
        self.say(f"cancel-all served: {len(reports)} of our order(s) cancelled")
        return reports

    def _finish(self, loop: TradingLoop, services: list[BackgroundService], feed_started: bool, status: str,
                reason: str, report: RunReport) -> None:
        if feed_started:
            try:
                self.candles.stop()
            except Exception as exc:  # noqa: BLE001 - report, but still record RunEnded
                report.notes.append(f"stopping the candle feed failed: {exc!r}")
        for service in reversed(services):
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001
                report.notes.append(f"stopping {type(service).__name__} failed: {exc!r}")
        if status != "failed":
            loop.finish(self.clock.now(), status, reason)
        else:  # the failure may be the batch itself: RunEnded still reaches the log (application/trading/run_end.py)
            failure = RuntimeError(reason)
            if not end_run_anyway(loop, self.store, self.clock.now(), status, reason, failure):
                report.notes.append("recording RunEnded failed: " + "; ".join(getattr(failure, "__notes__", [])))
        report.status, report.reason = status, reason
        self.say(f"run {self.run_id} ended: {status} ({reason})")

    # --- start-up --------------------------------------------------------------------------------

    def _starting_cash(self) -> Decimal:
        if self.mode is RunMode.PAPER:
            if self.initial_balance is None:
                raise ValueError("a paper run needs an initial balance")
            return self.initial_balance
        balances = self.venue.balances()
        cash = balances.get(self.settings.quote_currency, Decimal(0))
        if cash <= 0:
            raise ValueError(f"the venue holds no {self.settings.quote_currency} to trade with")
        return cash

    def _reconcile(self, loop: TradingLoop) -> Reconciliation:
        bot = self.settings.bot_id
        for run_id in close_abandoned_runs(self.store, self.mode, self.run_id, self._meta, bot=bot):
            self.say(f"run {run_id} never recorded its end (its process died): recorded as abandoned")
        book = rebuild_book(self.store, self.mode, bot=bot)
        if self.mode is RunMode.PAPER:
            return reconcile_paper(self.store, book, self._meta)
        result = reconcile_live(self.store, book, self.venue, self._meta, (self.settings.product,))
        positions = open_positions(book)
        working = book.working
        loop.restore(positions, working)
        adopt = getattr(self.exchange, "adopt", None)
        if adopt is not None:
            for order in working:
                request = OrderRequest(order.id, order.client_order_id, order.product, order.side, order.order_type,
                                       order.quantity, order.limit_price, order.stop_loss_price,
                                       order.take_profit_price)
                adopt(request, book.placed_at.get(order.id, order.created_on), order.venue_order_id,
                      set(order.fill_ids), order.filled_quantity)
        for product, position in positions.items():
            restore = getattr(self.exchange, "restore_position", None)
            if restore is not None:
                restore(product, position.quantity)
            entry = protecting_entry(book, product)
            arm = getattr(self.exchange, "arm", None)
            if entry is not None and arm is not None:
                arm(product, entry.id, self.clock.now(), long=position.quantity > 0,
                    stop_loss_price=entry.stop_loss_price, take_profit_price=entry.take_profit_price)
            self.say(f"carried position: {position.quantity} {product} at {position.average_entry}")
        return result
