"""Replaying a trading day from the log: which run, which events, and the state after each one.

``load_day`` reads the notification log once (never the read model) and keeps
what a day's replay needs: the run chosen (``--run``, or the only run with
events that day, or the only paper/live one among several), the run's events
before the day (to rebuild its state at 00:00 UTC), the day's events in log
order (the run's own, the candles of its product, and the events that belong
to no run: operator halts and resumes, cancel-all, incidents, config changes),
and every candle of the product (a second backtest over the same data finds
its candles already recorded by the first, so candles are looked up by start).

``build_timeline`` folds the day into rows: the event, a one-line account of
it for people, and the state after it (``application.replay.book``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from application.replay.describe import CANDLE_TYPES, category_of, describe
from application.replay.book import CONTROL_TYPES, DECISION_TYPES, ORDER_TYPES, ReplayBook, RunInfo, name_of
from application.trading_app import LoggedEvent, TradingApplication
from domain.control import TRADING_CONTROL_ID
from domain.events import DomainEvent
from domain.risk import RiskLimits

# Events that belong to no run but to the operator's view of the day.
GLOBAL_TYPES = CONTROL_TYPES | {"IncidentOpened", "IncidentResolved", "ConfigChanged", "ConfigBaselineSet",
                                "ConfigLedgerStarted", "BalanceReconciled"}
LIVE_MODES = ("paper", "live")


class ReplayError(ValueError):
    """The replay cannot be done as asked (no such run, several runs, nothing that day); says why."""


@dataclass
class DayLog:
    """What one day's replay reads from the log."""

    day: date
    run: RunInfo | None
    runs: list[RunInfo]  # every run with events on the day
    chosen_because: str
    before: list[LoggedEvent]  # the run's (and the operator's) events before the day
    events: list[LoggedEvent]  # the day's events, log order
    candles: dict[datetime, Any]  # the product's CandleClosed events by start (all days)
    notes: list[str] = field(default_factory=list)
    config_before_run: list[DomainEvent] = field(default_factory=list)  # config ledger events before RunStarted

    @property
    def day_start(self) -> datetime:
        return datetime.combine(self.day, time(0), tzinfo=timezone.utc)

    @property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)

    def candle_closes(self) -> dict[datetime, Decimal]:
        return {start: e.close for start, e in self.candles.items()}

    def run_day_events(self) -> list[DomainEvent]:
        """The chosen run's own events of the day, log order."""
        rid = self.run.run_id if self.run else None
        return [le.event for le in self.events if le.event.run_id == rid and rid is not None]



def _run_info(started: Any | None, run_id: uuid.UUID, fallback: Iterable[DomainEvent] = ()) -> RunInfo:
    if started is not None:
        return RunInfo(run_id, started.mode.value, started.product, started.granularity, started.strategy,
                       started.config_hash, started.code_version, started.initial_balance, started.occurred_at)
    product, granularity, strategy = "?", "?", "?"
    for e in fallback:
        if name_of(e) in DECISION_TYPES:
            product, strategy = e.product, e.strategy
            break
    return RunInfo(run_id, "unknown", product, granularity, strategy, "", "", None, None)


def load_day(trading: TradingApplication, day: date, *, run_id: uuid.UUID | None = None,
             product: str | None = None) -> DayLog:
    """Read the log once and gather the day of one run (see the module docstring for the choice)."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    logged = list(trading.iter_log(page=5000))
    started: dict[uuid.UUID, Any] = {}
    day_runs: dict[uuid.UUID, int] = {}  # run -> decisions on the day
    for le in logged:
        e = le.event
        if name_of(e) == "RunStarted":
            started[e.originator_id] = e
        if e.run_id is not None and start <= e.occurred_at < end:
            day_runs[e.run_id] = day_runs.get(e.run_id, 0) + (name_of(e) in DECISION_TYPES)
    # A run that only recorded candles on the day (others were recorded by an earlier run) still counts.
    runs = [_run_info(started.get(rid), rid, (le.event for le in logged if le.event.run_id == rid))
            for rid in day_runs]
    runs = [r for r in runs if day_runs[r.run_id]] or runs
    if product:
        runs = [r for r in runs if r.product == product]
    runs.sort(key=lambda r: (r.started_at or start, str(r.run_id)))
    run, why = _choose(runs, run_id, day, started, day_runs)
    notes: list[str] = []
    candle_key = (run.product, run.granularity) if run else None
    before: list[LoggedEvent] = []
    events: list[LoggedEvent] = []
    candles: dict[datetime, Any] = {}
    rid = run.run_id if run else None
    # Live runs trade one account: a live run carries the positions and working orders of the earlier ones
    # (application/trading/live_runner.py), so their events make its state. Backtest and paper runs start afresh.
    scope = {rid} if rid is not None else set()
    if run is not None and run.mode == "live":
        scope |= {r for r, e in started.items() if e.mode.value == "live"}
    orders_in_scope: set[uuid.UUID] = set()
    shared_control = run is not None and run.control_id == TRADING_CONTROL_ID
    for le in logged:
        e = le.event
        name = name_of(e)
        if name == "OrderPlaced" and e.run_id in scope:
            orders_in_scope.add(e.originator_id)
        if name in CANDLE_TYPES:
            key = (e.product, e.granularity)
            if candle_key is not None and key != candle_key:
                continue
            if candle_key is None and product and e.product != product:
                continue
            if name == "CandleClosed":
                candles.setdefault(e.start, e)
            if start <= e.occurred_at < end:
                events.append(le)
            continue
        # An order's later events (reconciliation by a later run, say) belong to the run that placed it.
        mine = (e.run_id in scope or (name in ORDER_TYPES and e.originator_id in orders_in_scope)
                or (shared_control and name in CONTROL_TYPES and e.originator_id == TRADING_CONTROL_ID))
        if e.run_id is not None and not mine:
            continue
        if e.run_id is None and name not in GLOBAL_TYPES and not mine:
            continue
        if e.occurred_at < start:
            before.append(le)
        elif e.occurred_at < end:
            events.append(le)
    if run is not None and not any(le.event.run_id == rid for le in events):
        notes.append(f"run {rid} has no events on {day}")
    started_nid = next((le.notification_id for le in logged if rid is not None and name_of(le.event) == "RunStarted"
                        and le.event.originator_id == rid), None)
    config_before = [le.event for le in logged if name_of(le.event) in ("ConfigChanged", "ConfigBaselineSet")
                     and (le.notification_id < started_nid if started_nid is not None else le.event.occurred_at < start)]
    return DayLog(day, run, runs, why, before, events, candles, notes, config_before)


def _choose(runs: list[RunInfo], run_id: uuid.UUID | None, day: date, started: dict,
            decisions: dict[uuid.UUID, int]) -> tuple[RunInfo | None, str]:
    if run_id is not None:
        for r in runs:
            if r.run_id == run_id:
                return r, "chosen with --run"
        if run_id in started:
            raise ReplayError(f"run {run_id} has no decisions on {day}; runs with events that day: "
                              + (", ".join(_label(r) for r in runs) or "none"))
        raise ReplayError(f"no run {run_id} in this log")
    if not runs:
        return None, "no run traded on this day"
    if len(runs) == 1:
        return runs[0], "the only run with events on this day"
    for mode in ("live", "paper"):
        same = [r for r in runs if r.mode == mode]
        if same:
            # restarts of one bot: the run that made the most decisions that day (the others show in its timeline)
            best = max(same, key=lambda r: (decisions.get(r.run_id, 0), r.started_at or day_floor(day)))
            return best, (f"the {mode} run that made the most decisions among {len(runs)} runs that day "
                          "(pass --run for another)")
    raise ReplayError(f"{len(runs)} runs have events on {day}; pass --run RUN_ID: " + "; ".join(_label(r) for r in runs))


def day_floor(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def _label(r: RunInfo) -> str:
    at = r.started_at.isoformat() if r.started_at else "?"
    return f"{r.run_id} ({r.mode} {r.product} {r.granularity} {r.strategy}, started {at})"


# --- the timeline -----------------------------------------------------------------------


@dataclass
class TimelineRow:
    """One event of the day with its account and the state after it."""

    notification_id: int
    at: datetime
    type: str
    actor: str
    category: str  # candle, decision, risk, order, fill, control, incident, config, run, account
    summary: str
    event: DomainEvent
    state: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "notification_id": self.notification_id, "at": self.at.isoformat(), "type": self.type,
            "category": self.category, "actor": self.actor, "summary": self.summary,
            "stream_id": str(e.originator_id), "version": e.originator_version,
            "correlation_id": str(e.correlation_id) if e.correlation_id else None,
            "causation_id": str(e.causation_id) if e.causation_id else None,
            "run_id": str(e.run_id) if e.run_id else None,
            "payload": e.payload(), "state": self.state,
        }


@dataclass
class Timeline:
    """A day of one run: rows in log order, the state at day start and at the end."""

    day: date
    run: RunInfo | None
    runs: list[RunInfo]
    chosen_because: str
    start_state: dict[str, Any]
    rows: list[TimelineRow]
    end_state: dict[str, Any]
    candles: list[Any]  # the day's CandleClosed of the product, by start
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(), "run": self.run.as_dict() if self.run else None,
            "runs": [r.as_dict() for r in self.runs], "chosen_because": self.chosen_because,
            "notes": self.notes, "start_state": self.start_state, "end_state": self.end_state,
            "events": [row.as_dict() for row in self.rows],
        }


def book_at_day_start(log: DayLog, limits: RiskLimits | None = None) -> ReplayBook:
    """The run's state at 00:00 UTC of the day, from every event before it."""
    book = ReplayBook(log.run, limits, log.candle_closes())
    for le in log.before:
        book.apply(le.event)
    book.start_day(log.day_start)  # the day before is closed; the day's start equity is taken at its first step
    return book


# A run's own events that a candle step makes: the first of them on the day is where re-execution begins.
STEP_TYPES = DECISION_TYPES | ORDER_TYPES | {"RiskAssessed", "ControlStarted", "TradingHalted", "TradingResumed",
                                             "CancelAllRequested"}


def book_before_first_step(log: DayLog, limits: RiskLimits | None = None) -> tuple[ReplayBook, list[DomainEvent]]:
    """The run's state just before its first candle step of the day, and the run's events from there on.

    What the day holds before that step (the run's start and opening deposit when it began that day,
    an operator's config change) is part of the starting state, not something a re-run must produce.
    """
    book = book_at_day_start(log, limits)
    rid = log.run.run_id if log.run else None
    first = len(log.events)
    for i, le in enumerate(log.events):
        if le.event.run_id == rid and rid is not None and name_of(le.event) in STEP_TYPES:
            first = i
            break
        book.apply(le.event)
    return book, [le.event for le in log.events[first:] if rid is not None and le.event.run_id == rid]


def build_timeline(log: DayLog, limits: RiskLimits | None = None, *, since: datetime | None = None,
                   until: datetime | None = None, state_every_event: bool = True) -> Timeline:
    """Rows for the day's events (those in [since, until) when given), each with the state after it."""
    book = book_at_day_start(log, limits)
    start_state = book.snapshot(full=True)
    rows: list[TimelineRow] = []
    product = log.run.product if log.run else None
    for le in log.events:
        e = le.event
        book.apply(e)
        if since is not None and e.occurred_at < since:
            continue
        if until is not None and e.occurred_at >= until:
            continue
        name = name_of(e)
        if product and getattr(e, "product", product) != product and name not in CANDLE_TYPES:
            continue
        rows.append(TimelineRow(le.notification_id, e.occurred_at, name, e.actor, category_of(name),
                                describe(e, book), e, book.snapshot() if state_every_event else None))
    day_candles = sorted((c for s, c in log.candles.items() if log.day_start <= c.occurred_at < log.day_end),
                         key=lambda c: c.start)
    return Timeline(log.day, log.run, log.runs, log.chosen_because, start_state, rows, book.snapshot(full=True),
                    day_candles, list(log.notes))


def state_at(log: DayLog, instant: datetime, limits: RiskLimits | None = None) -> dict[str, Any]:
    """The whole state after every event that occurred at or before ``instant``."""
    book = book_at_day_start(log, limits)
    last: LoggedEvent | None = None
    for le in log.events:
        if le.event.occurred_at > instant:
            break
        book.apply(le.event)
        last = le
    state = book.snapshot(full=True)
    state["at"] = instant.isoformat()
    state["last_event"] = None if last is None else {
        "notification_id": last.notification_id, "type": name_of(last.event),
        "at": last.event.occurred_at.isoformat(), "summary": describe(last.event, book)}
    return state
