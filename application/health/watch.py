"""Health: judge measurements against the operations manual's thresholds, and alert on the verdict.

``evaluate(sample, thresholds)`` is pure: a ``HealthSample`` (what was measured;
None = not measured) becomes a ``HealthReport`` with one ``CheckResult`` per
check (ok, warn = past the manual's target, critical = past its alert level,
skipped = not measured) and an overall healthy / degraded / unhealthy.

``HealthWatch`` runs sample -> evaluate -> record -> notify. Each alert is an
event on its check's stream (domain/alerts.py), so de-duplication is by state
kept in the store: raised once while the check keeps failing (again only on
escalation), resolved once it is back within target, and two watchers on one
store (``tradecore run`` and ``tradecore health --watch``) cannot double-page.
Delivery to the ``AlertSink`` happens after the event is recorded; a delivery
that fails is kept and retried on the next check, never dropped silently.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from eventsourcing.application import AggregateNotFoundError

from application.errors import ConcurrencyConflict
from application.health.checks import CHECKS, CHECKS_BY_NAME, DEGRADES_ONLY, CheckSpec  # noqa: F401
from application.ports import AlertSink, Clock
from application.trading_app import TradingApplication
from domain.alerts import Alert, AlertRaised, AlertResolved, alert_id
from domain.control import Severity
from domain.events import DomainEvent, EventMeta

log = logging.getLogger("tradecore.health")

CheckStatus = Literal["ok", "warn", "critical", "skipped"]
Overall = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True)
class Threshold:
    """A check's target (past it: warn) and alert level (past it: critical)."""

    alert: Decimal
    target: Decimal | None = None
    higher_is_worse: bool = True
    inclusive: bool = False  # True: reaching the level counts (the daily-loss limit, as risk compares it)

    def past(self, value: Decimal, level: Decimal) -> bool:
        if self.higher_is_worse:
            return value >= level if self.inclusive else value > level
        return value <= level if self.inclusive else value < level




def market_data_threshold(granularity_s: float, tick_s: float, target_s: float, alert_s: float) -> Threshold:
    """Market-data age thresholds: a candle is due every granularity and is seen up to one loop tick
    late; the manual's latency target and alert level are allowed on top of that."""
    expected = Decimal(str(granularity_s)) + Decimal(str(tick_s))
    return Threshold(alert=expected + Decimal(str(alert_s)), target=expected + Decimal(str(target_s)))


@dataclass(frozen=True)
class HealthThresholds:
    """One threshold per check; the defaults are the operations manual's (1h candles, 60 s ticks)."""

    memory: Threshold = Threshold(Decimal(1500), Decimal(1200))
    system_memory: Threshold = Threshold(Decimal(90), Decimal(80))
    cpu: Threshold = Threshold(Decimal(80), Decimal(70))
    disk: Threshold = Threshold(Decimal(90), Decimal(80))
    api_error_rate: Threshold = Threshold(Decimal(5), Decimal(1))
    api_response_time: Threshold = Threshold(Decimal(5000), Decimal(1000))
    market_data_age: Threshold = market_data_threshold(3600, 60, 5, 30)
    llm_response_rate: Threshold = Threshold(Decimal(90), Decimal(95), higher_is_worse=False)
    daily_loss: Threshold = Threshold(Decimal(3), Decimal("2.4"), inclusive=True)
    trading_halted: Threshold = Threshold(Decimal(0))


@dataclass(frozen=True)
class HealthSample:
    """What was measured at ``taken_at``. None = not measured (the check is skipped and ``notes``
    says why); a measurement that raised is in ``errors`` and fails its check."""

    taken_at: datetime
    memory: Decimal | None = None
    system_memory: Decimal | None = None
    cpu: Decimal | None = None
    disk: Decimal | None = None
    api_error_rate: Decimal | None = None
    api_response_time: Decimal | None = None
    market_data_age: Decimal | None = None
    llm_response_rate: Decimal | None = None
    daily_loss: Decimal | None = None
    trading_halted: Decimal | None = None  # 1 halted, 0 running
    notes: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)  # context for the message (a halt's reason)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: status, the value, the threshold it was held against, and a message."""

    name: str
    status: CheckStatus
    value: Decimal | None
    threshold: Decimal | None
    unit: str
    message: str
    severity: Severity | None = None  # the alert this state warrants (None: no alert)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "value": _num(self.value), "threshold": _num(self.threshold),
            "unit": self.unit.strip(), "severity": self.severity.value if self.severity else None,
            "message": self.message,
        }


@dataclass(frozen=True)
class HealthReport:
    """Every check's verdict at one instant, and the overall status."""

    taken_at: datetime
    checks: tuple[CheckResult, ...]

    @property
    def overall(self) -> Overall:
        """unhealthy: a P0/P1 check is critical (a trading halt, being deliberate, only degrades); degraded:
        anything else warns or fails; else healthy."""
        if any(c.status == "critical" and c.severity in (Severity.P0, Severity.P1) and c.name not in DEGRADES_ONLY
               for c in self.checks):
            return "unhealthy"
        if any(c.status in ("warn", "critical") for c in self.checks):
            return "degraded"
        return "healthy"

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.overall, "checked_at": self.taken_at.isoformat(),
                "checks": [c.to_dict() for c in self.checks]}


def evaluate(sample: HealthSample, thresholds: HealthThresholds) -> HealthReport:
    """Judge each measurement against its threshold (pure)."""
    return HealthReport(sample.taken_at, tuple(_judge(spec, sample, getattr(thresholds, spec.name)) for spec in CHECKS))


def _judge(spec: CheckSpec, sample: HealthSample, th: Threshold) -> CheckResult:
    value: Decimal | None = getattr(sample, spec.name)
    if spec.name in sample.errors:
        return CheckResult(spec.name, "critical", None, th.alert, spec.unit,
                           f"{spec.title} could not be measured: {sample.errors[spec.name]}", spec.severity)
    if value is None:
        return CheckResult(spec.name, "skipped", None, th.alert, spec.unit,
                           f"{spec.title} not measured: {sample.notes.get(spec.name, 'no measurement')}")
    detail = sample.details.get(spec.name)
    if spec.states is not None:
        failing = th.past(value, th.alert)
        text = spec.states[1 if failing else 0]
        message = text[0].upper() + text[1:] + (f": {detail}" if detail else "")
        return CheckResult(spec.name, "critical" if failing else "ok", value, th.alert, spec.unit, message,
                           spec.severity if failing else None)
    worse = "above" if th.higher_is_worse else "below"
    shown = f"{spec.title} {_fmt(value)}{spec.unit}"
    if th.past(value, th.alert):
        return CheckResult(spec.name, "critical", value, th.alert, spec.unit,
                           f"{shown} is {worse} the alert level {_fmt(th.alert)}{spec.unit}", spec.severity)
    if th.target is not None and th.past(value, th.target):
        return CheckResult(spec.name, "warn", value, th.target, spec.unit,
                           f"{shown} is {worse} the {spec.target_name} {_fmt(th.target)}{spec.unit}", spec.warn_severity)
    return CheckResult(spec.name, "ok", value, th.target if th.target is not None else th.alert, spec.unit,
                       f"{shown} is within target")


def _fmt(value: Decimal) -> str:
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    return f"{value.normalize():f}"


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- the watch -------------------------------------------------------------------------------------


@dataclass
class WatchOutcome:
    """What one check of the watch did."""

    report: HealthReport
    raised: list[AlertRaised] = field(default_factory=list)
    resolved: list[AlertResolved] = field(default_factory=list)
    undelivered: int = 0  # notifications waiting for the sink to come back


class HealthWatch:
    """Sample -> evaluate -> record AlertRaised / AlertResolved -> notify the AlertSink.

    ``check()`` does one round; ``start_background(interval_s)`` / ``stop()`` run it
    in a thread (for ``tradecore run``); ``run(interval_s, ticks)`` in the foreground.
    """

    MAX_UNDELIVERED = 200

    def __init__(self, store: TradingApplication, probe: Callable[[], HealthSample], thresholds: HealthThresholds,
                 sink: AlertSink, clock: Clock, *, scope: str = "tradecore", actor: str = "health"):
        self.store = store
        self.probe = probe
        self.thresholds = thresholds
        self.sink = sink
        self.clock = clock
        self.scope = scope
        self.actor = actor
        self.last: WatchOutcome | None = None
        self._undelivered: deque[tuple[str, str, str]] = deque(maxlen=self.MAX_UNDELIVERED)
        self._paged_unrecorded: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- one round ---------------------------------------------------------------------------------

    def check(self) -> WatchOutcome:
        """Measure, judge, record what changed, and send the notifications."""
        with self._lock:
            sample = self._sample()
            report = evaluate(sample, self.thresholds)
            outcome = WatchOutcome(report)
            self._deliver_backlog()
            for result in report.checks:
                try:
                    event = self._record(result, report.taken_at)
                except Exception as exc:  # noqa: BLE001 - the store is down: page anyway, de-duplicated in memory
                    log.error("health alert state of %s not readable or writable: %s", result.name, exc)
                    self._page_unrecorded(result, exc)
                    continue
                if isinstance(event, AlertRaised):
                    outcome.raised.append(event)
                    if event.check in self._paged_unrecorded:  # already paged while the store was down
                        self._paged_unrecorded.discard(event.check)
                        continue
                    self._notify(*_raised_notice(event))
                elif isinstance(event, AlertResolved):
                    outcome.resolved.append(event)
                    self._paged_unrecorded.discard(event.check)
                    self._notify(*_resolved_notice(event))
                elif result.status == "ok" and result.name in self._paged_unrecorded:
                    self._page_unrecorded(result, None)  # recovered before its alert could be recorded
            outcome.undelivered = len(self._undelivered)
            self.last = outcome
            return outcome

    def _sample(self) -> HealthSample:
        try:
            return self.probe()
        except Exception as exc:  # noqa: BLE001 - a probe that cannot measure anything is itself a failure
            log.exception("health probe failed")
            reason = f"{type(exc).__name__}: {exc}"
            return HealthSample(self.clock.now(), errors={spec.name: reason for spec in CHECKS})

    def _page_unrecorded(self, result: CheckResult, exc: Exception | None) -> None:
        # Without the store there is no alert state: page each failing check once (kept in memory)
        # and its recovery once.
        spec = CHECKS_BY_NAME[result.name]
        why = ("the event log was unavailable" if exc is None
               else f"the event log is unavailable: {type(exc).__name__}: {exc}")
        if result.status == "ok" and result.name in self._paged_unrecorded:
            self._paged_unrecorded.discard(result.name)
            self._notify("OK", f"[RESOLVED] {spec.title}",
                         f"{spec.title} recovered: {result.message} (not recorded: {why})")
            return
        if result.severity is None or result.name in self._paged_unrecorded:
            return
        self._paged_unrecorded.add(result.name)
        self._notify(result.severity.value, f"[{result.severity.value}] {spec.title}: {result.status}",
                     f"{result.message}\nWhat to do: {spec.action}\n(not recorded in the event log: {why})")

    def _load(self, check: str) -> Alert | None:
        try:
            return self.store.repository.get(alert_id(check, self.scope))
        except AggregateNotFoundError:
            return None

    def _record(self, result: CheckResult, at: datetime) -> DomainEvent | None:
        """Record the alert event this verdict calls for, if any (state decides: no duplicates)."""
        spec = CHECKS_BY_NAME[result.name]
        meta = EventMeta(at, self.actor, alert_id(result.name, self.scope), None, None)
        for _attempt in range(3):
            alert = self._load(result.name)
            if result.severity is not None:
                fields_ = dict(severity=result.severity, status=result.status, value=result.value,
                               threshold=result.threshold, unit=spec.unit.strip(), message=result.message)
                if alert is None:
                    alert = Alert.first(result.name, meta, scope=self.scope, **fields_)
                elif not alert.raise_alert(meta, **fields_):
                    return None
            elif result.status == "ok" and alert is not None:
                if not alert.resolve(meta, value=result.value, threshold=result.threshold, unit=spec.unit.strip(),
                                     message=f"{spec.title} recovered: {result.message}"):
                    return None
            else:
                return None  # warn without an alert of its own, or skipped: keep the current state
            events = alert.collect_events()
            try:
                self.store.record_in_order(events)
            except ConcurrencyConflict:
                continue  # another watcher recorded first: decide again on the new state
            return events[-1]
        log.warning("health alert for %s not recorded: the stream kept changing under us", result.name)
        return None

    def _notify(self, severity: str, title: str, details: str) -> None:
        self._undelivered.append((severity, title, details))
        self._deliver_backlog()

    def _deliver_backlog(self) -> None:
        while self._undelivered:
            severity, title, details = self._undelivered[0]
            try:
                self.sink.alert(severity, title, details)
            except Exception as exc:  # noqa: BLE001 - kept and retried at the next check
                log.error("alert not delivered (%d waiting), will retry: %s: %s",
                          len(self._undelivered), type(exc).__name__, exc)
                return
            self._undelivered.popleft()

    # --- running ---------------------------------------------------------------------------------------

    def run(self, interval_s: float, ticks: int | None = None,
            on_tick: Callable[[WatchOutcome], None] | None = None) -> None:
        """Check every ``interval_s`` seconds until ``stop()`` (or ``ticks`` checks were made)."""
        done = 0
        while not self._stop.is_set():
            try:
                outcome = self.check()
                if on_tick is not None:
                    on_tick(outcome)
            except Exception:  # noqa: BLE001 - the watch must outlive one bad round
                log.exception("health check round failed")
            done += 1
            if ticks is not None and done >= ticks:
                return
            if self._stop.wait(interval_s):
                return

    def start_background(self, interval_s: float) -> None:
        """Run the watch in a daemon thread (the seam ``tradecore run`` uses)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the health watch is already running")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, not {interval_s}")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(interval_s,), name="health-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (waits for a round in progress, up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _raised_notice(event: AlertRaised) -> tuple[str, str, str]:
    spec = CHECKS_BY_NAME.get(event.check)
    title = f"[{event.severity.value}] {spec.title if spec else event.check}: {event.status.value}"
    details = event.message + (f"\nWhat to do: {spec.action}" if spec else "")
    return event.severity.value, title, details


def _resolved_notice(event: AlertResolved) -> tuple[str, str, str]:
    spec = CHECKS_BY_NAME.get(event.check)
    lasted = event.occurred_at - event.raised_at
    minutes = max(int(lasted.total_seconds() // 60), 0)
    title = f"[RESOLVED] {spec.title if spec else event.check}"
    details = (f"{event.message} (the {event.severity.value} alert raised at "
               f"{event.raised_at:%Y-%m-%d %H:%M} UTC lasted {minutes} min)")
    return "OK", title, details


__all__ = [
    "CHECKS", "CheckResult", "CheckSpec", "HealthReport", "HealthSample", "HealthThresholds",
    "HealthWatch", "Threshold", "WatchOutcome", "evaluate", "market_data_threshold",
]
