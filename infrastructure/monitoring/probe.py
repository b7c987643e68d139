"""Measurements for the health checks: the machine (psutil) and the trading run (the event log).

Trading measurements come from the log itself, not from the DuckDB read model
(which another process may own): the active run is the latest paper or live
run that has not ended, and ``RunFollower`` folds its deposits, fills,
candles and decisions through the domain's ``RunBook`` (domain/run_book.py), the
one fold the trading loop, replay and the money projections use. It is
incremental: the first sample finds the run through its few ``RunStarted``
events and reads from the run's start; later samples read only the events
appended since, with a topic filter, so a check costs milliseconds.

- market-data age: now - the close of the latest candle the run has seen (its
  own CandleClosed, one it decided on, or a warm-up candle recorded just before
  its RunStarted); another run's candles (a backtest's) do not count;
- daily loss: the run book's ``daily_loss_pct`` now (so it equals the
  ``risk_usage`` and ``pnl_daily`` read models' ``daily_loss_pct``). Positions
  a live run carried over from earlier runs (application/trading/reconciliation.py) are
  not in its fills, so they are not in this figure;
- LLM response rate: DecisionMade / (DecisionMade + DecisionFailed) of the run
  within a window (judged only with enough decisions, and only for the llm strategy);
- API error rate and response time: from the in-process ``ApiCallMeter`` the
  exchange adapter feeds; without one (``tradecore health`` one-shot) they are skipped.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from eventsourcing.utils import get_topic

from application.health.api_calls import ApiCallMeter
from application.health.watch import HealthSample
from application.ports import Clock
from application.trading_app import TradingApplication
from domain.account import FundsDeposited, FundsWithdrawn, account_id
from domain.control import RunEnded, RunMode, RunStarted
from domain.decision import DecisionFailed, DecisionMade
from domain.market import GRANULARITIES, CandleClosed, CandleCorrected
from domain.order import OrderFilled, OrderPartiallyFilled, OrderPlaced
from domain.run_book import BooksHolder, RunBook

log = logging.getLogger("tradecore.health")

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
LIVE_MODES = (RunMode.PAPER, RunMode.LIVE)
RUN_TOPICS = (get_topic(RunStarted), get_topic(RunEnded))
SEED_WINDOW = 2000  # notifications before a run's start searched for its warm-up candles
FOLLOWED_TOPICS = RUN_TOPICS + tuple(get_topic(c) for c in (
    CandleClosed, CandleCorrected, DecisionMade, DecisionFailed, OrderPlaced, OrderFilled, OrderPartiallyFilled,
    FundsDeposited, FundsWithdrawn,
))


@dataclass
class FollowedRun(BooksHolder):
    """A paper/live run as the follower knows it: its identity, its books (the domain's ``RunBook``, the
    fold the loop, replay and the projections use) and what the health checks read."""

    run_id: uuid.UUID
    mode: RunMode
    product: str
    granularity: str
    strategy: str
    started_at: datetime
    ended: bool = False
    books: RunBook = field(default_factory=lambda: RunBook(keep_closed_days=False))
    orders: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)  # order id -> (product, side)
    last_close_at: datetime | None = None
    step_start: datetime | None = None
    decisions: deque[tuple[datetime, bool]] = field(default_factory=lambda: deque(maxlen=100_000))

    def daily_loss_pct(self) -> Decimal | None:
        """The run book's daily loss now; None before the run's first equity point of the day."""
        day = self.books.current
        if day is None or not day.started:
            return None
        return self.books.daily_loss_pct().quantize(Decimal("0.0001"))


class RunFollower:
    """Follows the log and keeps the books of the active (latest, not ended) paper/live run (of ``bot``, if given)."""

    def __init__(self, store: TradingApplication, page: int = 5000, bot: str | None = None):
        self.store = store
        self.page = page
        self.bot = bot
        self.cursor = 0
        self.run: FollowedRun | None = None
        self._started = False
        self._lock = threading.Lock()

    def refresh(self) -> FollowedRun | None:
        """Read what was appended since the last refresh; returns the active run's books (or None)."""
        with self._lock:
            if not self._started:
                self._find_run()
                self._started = True
            for logged in self.store.iter_log(after=self.cursor, page=self.page, topics=FOLLOWED_TOPICS):
                self._apply(logged.event)
                self.cursor = logged.notification_id
            return self.run if self.run is not None and not self.run.ended else None

    def _find_run(self) -> None:
        # The runs' own events are few: find the latest paper/live run, then read from its start.
        # With none in progress, nothing before the head matters: a new run starts after it.
        head = self.store.max_notification_id()
        latest: tuple[int, RunStarted] | None = None
        ended: set[uuid.UUID] = set()
        for logged in self.store.iter_log(after=0, page=self.page, topics=RUN_TOPICS):
            event = logged.event
            if isinstance(event, RunStarted) and event.mode in LIVE_MODES and self.bot in (None, event.bot):
                latest = (logged.notification_id, event)
            elif isinstance(event, RunEnded):
                ended.add(event.originator_id)
        if latest is not None and latest[1].originator_id not in ended:
            self.cursor = latest[0] - 1
            self._apply(latest[1])
            self._seed_mark(latest[0])
            self.cursor = latest[0]
        else:
            self.cursor = head

    def _seed_mark(self, start_id: int) -> None:
        # A run warms up on candles recorded just before its RunStarted (possibly by an earlier run):
        # the last of them is its first mark and its latest market data.
        run = self.run
        assert run is not None
        rows = self.store.read_log(after=max(start_id - SEED_WINDOW, 0), limit=SEED_WINDOW,
                                   topics=(get_topic(CandleClosed), get_topic(CandleCorrected)))
        for logged in rows:
            event = logged.event
            if logged.notification_id < start_id and event.product == run.product \
                    and event.granularity == run.granularity:
                if run.last_close_at is None or event.occurred_at >= run.last_close_at:
                    run.books.mark(event.product, event.close)
                    run.last_close_at = event.occurred_at

    def _apply(self, event) -> None:
        if isinstance(event, RunStarted):
            if event.mode in LIVE_MODES and self.bot in (None, event.bot):
                self.run = FollowedRun(event.originator_id, event.mode, event.product, event.granularity,
                                       event.strategy, event.occurred_at)
            return
        run = self.run
        if run is None:
            return
        if isinstance(event, (CandleClosed, CandleCorrected)):
            if event.product != run.product or event.granularity != run.granularity:
                return
            if event.run_id != run.run_id and (event.run_id is not None
                                               or event.occurred_at < run.started_at - _grace(run)):
                return  # another run's candle (a backtest's history), or one from before this run
            end = event.occurred_at  # a candle's event is dated at its close
            if run.last_close_at is not None and end < run.last_close_at:
                return  # an older candle recorded late is not the latest price
            if event.run_id == run.run_id and isinstance(event, CandleClosed):
                run.books.step(end, event.product, event.close)  # the run's own candle: its step
                run.step_start = event.start
            else:
                run.books.mark(event.product, event.close)
            run.last_close_at = end
            return
        if event.run_id != run.run_id:
            return
        if isinstance(event, RunEnded):
            run.ended = True
        elif isinstance(event, (DecisionMade, DecisionFailed)):
            run.decisions.append((event.occurred_at, isinstance(event, DecisionMade)))
            if event.product != run.product:
                return
            close = event.candle_start + _step(run)
            if run.step_start != event.candle_start:  # its candle was recorded earlier by someone else
                mark = run.books.marks.get(event.product)
                if mark is not None:
                    run.books.step(event.occurred_at, event.product, mark)
                run.step_start = event.candle_start
            run.books.decided(event.occurred_at)  # the run's equity point (domain/run_book.py)
            # The run decided on this candle even if its CandleClosed was recorded earlier by someone else.
            if run.last_close_at is None or close > run.last_close_at:
                run.last_close_at = close
        elif isinstance(event, OrderPlaced):
            run.orders[event.originator_id] = (event.product, event.side.value)
        elif isinstance(event, (OrderFilled, OrderPartiallyFilled)):
            placed = run.orders.get(event.originator_id)
            if placed is not None:
                run.books.fill(event.occurred_at, placed[0], placed[1], event.quantity, event.price, event.fee)
        elif isinstance(event, FundsDeposited) and event.originator_id == account_id(f"run-{run.run_id}"):
            run.books.deposit(event.occurred_at, event.amount)
        elif isinstance(event, FundsWithdrawn) and event.originator_id == account_id(f"run-{run.run_id}"):
            run.books.withdraw(event.occurred_at, event.amount)


def _step(run: FollowedRun) -> timedelta:
    return GRANULARITIES.get(run.granularity, timedelta(hours=1))


def _grace(run: FollowedRun) -> timedelta:
    # A run's first candle may have closed a little before RunStarted was recorded.
    return 2 * _step(run)


class HealthProbe:
    """Takes a ``HealthSample``: machine measurements via psutil, trading ones via ``RunFollower``."""

    def __init__(self, store: TradingApplication, clock: Clock, *, data_path: Path,
                 api_meter: ApiCallMeter | None = None, llm_window: timedelta = timedelta(hours=24),
                 llm_min_decisions: int = 5, cpu_interval: float | None = None, measure_process: bool = True,
                 bot: str | None = None):
        import psutil

        self.store = store
        self.clock = clock
        self.data_path = Path(data_path)
        self.api_meter = api_meter
        self.llm_window = llm_window
        self.llm_min_decisions = llm_min_decisions
        self.cpu_interval = cpu_interval
        self.measure_process = measure_process  # False in a one-shot CLI: its own memory says nothing of the bot
        self.bot = bot  # a bot's watch: its own runs and its own halts (besides every bot's)
        self.follower = RunFollower(store, bot=bot)
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)  # prime: the first non-blocking reading is meaningless

    def __call__(self) -> HealthSample:
        return self.sample()

    def sample(self) -> HealthSample:
        """Measure everything measurable now; failures land in ``errors``, gaps in ``notes``."""
        values: dict[str, Decimal | None] = {}
        notes: dict[str, str] = {}
        errors: dict[str, str] = {}

        def measure(names: tuple[str, ...], how) -> None:
            try:
                how()
            except Exception as exc:  # noqa: BLE001 - a failed measurement fails its check, not the probe
                log.warning("health measurement of %s failed: %s", ", ".join(names), exc)
                for name in names:
                    errors[name] = f"{type(exc).__name__}: {exc}"

        if self.measure_process:
            measure(("memory",), lambda: self._process_memory(values))
        else:
            notes["memory"] = "measured inside the long-running process (tradecore run, tradecore health --watch)"
        measure(("system_memory", "cpu"), lambda: self._machine(values))
        measure(("disk",), lambda: self._disk(values))
        self._api(values, notes)
        measure(("market_data_age", "daily_loss", "llm_response_rate"), lambda: self._trading(values, notes))
        details: dict[str, str] = {}
        measure(("trading_halted",), lambda: self._halt(values, details))
        return HealthSample(taken_at=self.clock.now(), notes=notes, errors=errors, details=details, **values)

    def _halt(self, values: dict, details: dict) -> None:
        from domain.control import bot_control_id

        # the bot's own control stream first, then the one every bot obeys
        controls = [self.store.get_trading_control(bot_control_id(self.bot))] if self.bot else []
        control = next((c for c in controls if c is not None and c.halted), None) or self.store.get_trading_control()
        halted = bool(control and control.halted)
        values["trading_halted"] = Decimal(1 if halted else 0)
        if halted:
            severity = control.severity.value if control.severity else "?"
            details["trading_halted"] = (f"since {control.halted_at:%Y-%m-%d %H:%M} UTC by {control.halted_by} "
                                         f"({severity}): {control.halt_reason}")

    def _process_memory(self, values: dict) -> None:
        values["memory"] = (Decimal(self._process.memory_info().rss) / Decimal(2**20)).quantize(CENT)

    def _machine(self, values: dict) -> None:
        import psutil

        values["system_memory"] = Decimal(repr(psutil.virtual_memory().percent)).quantize(CENT)
        values["cpu"] = Decimal(repr(psutil.cpu_percent(interval=self.cpu_interval))).quantize(CENT)

    def _disk(self, values: dict) -> None:
        import psutil

        path = self.data_path
        while not path.exists() and path != path.parent:
            path = path.parent  # the store's directory may not exist yet: measure the disk it will be on
        values["disk"] = Decimal(repr(psutil.disk_usage(str(path)).percent)).quantize(CENT)

    def _api(self, values: dict, notes: dict) -> None:
        if self.api_meter is None:
            for name in ("api_error_rate", "api_response_time"):
                notes[name] = "counted by the running bot's exchange adapter (not in a one-shot check)"
            return
        values["api_error_rate"] = self.api_meter.error_rate_pct()
        values["api_response_time"] = self.api_meter.response_p95_ms()
        window = int(self.api_meter.window.total_seconds() // 60)
        for name in ("api_error_rate", "api_response_time"):
            if values[name] is None:
                notes[name] = f"no exchange API call in the last {window} min"

    def _trading(self, values: dict, notes: dict) -> None:
        run = self.follower.refresh()
        if run is None:
            for name in ("market_data_age", "daily_loss", "llm_response_rate"):
                notes[name] = "no paper or live run in progress"
            return
        now = self.clock.now()
        reference = run.last_close_at or run.started_at
        values["market_data_age"] = Decimal(str(round(max((now - reference).total_seconds(), 0.0), 1)))
        loss = run.daily_loss_pct()
        values["daily_loss"] = loss
        if loss is None:
            notes["daily_loss"] = "no decision of the run yet today (no start-of-day equity)"
        if run.strategy != "llm":
            notes["llm_response_rate"] = f"the run's strategy is {run.strategy}, not llm"
            return
        cutoff = now - self.llm_window
        recent = [ok for at, ok in run.decisions if at >= cutoff]
        if len(recent) < self.llm_min_decisions:
            notes["llm_response_rate"] = (f"{len(recent)} decision(s) in the window, "
                                          f"fewer than the {self.llm_min_decisions} needed to judge")
            return
        values["llm_response_rate"] = (Decimal(sum(recent)) * HUNDRED / Decimal(len(recent))).quantize(CENT)


def probe_from(settings, store: TradingApplication, clock: Clock, *, data_path: Path,
               api_meter: ApiCallMeter | None = None, cpu_interval: float | None = None, measure_process: bool = True,
               bot: str | None = None) -> HealthProbe:
    """The probe with the ``[monitoring]`` LLM window; ``cpu_interval`` blocks that long for a CPU reading."""
    m = settings.monitoring
    return HealthProbe(store, clock, data_path=data_path, api_meter=api_meter,
                       llm_window=timedelta(minutes=m.llm_window_minutes), llm_min_decisions=m.llm_min_decisions,
                       cpu_interval=cpu_interval, measure_process=measure_process, bot=bot)
