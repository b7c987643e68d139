"""HealthWatch: record and notify once per failure, recover once, retry deliveries, share state via the store."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from api.bootstrap import open_store
from application.health.watch import HealthSample, HealthThresholds, HealthWatch
from domain.alerts import AlertRaised, AlertResolved
from domain.control import Severity

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class TickClock:
    def __init__(self):
        self.at = T0

    def now(self) -> datetime:
        return self.at


class RecordingSink:
    """A fake AlertSink: keeps what it was sent; can be told to fail."""

    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []
        self.failing = False

    def alert(self, severity: str, title: str, details: str) -> None:
        if self.failing:
            raise ConnectionError("webhook down")
        self.sent.append((severity, title, details))


class ScriptedProbe:
    """Serves the disk usage it is told, one sample per call, at the clock's time."""

    def __init__(self, clock: TickClock):
        self.clock = clock
        self.disk = D(50)
        self.daily_loss: D | None = None

    def __call__(self) -> HealthSample:
        self.clock.at += timedelta(minutes=1)
        return HealthSample(self.clock.at, disk=self.disk, daily_loss=self.daily_loss)


@pytest.fixture
def store(tmp_path):
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    yield app
    app.close()


def make_watch(store, sink=None, clock=None):
    clock = clock or TickClock()
    probe = ScriptedProbe(clock)
    watch = HealthWatch(store, probe, HealthThresholds(), sink or RecordingSink(), clock)
    return watch, probe


def alert_events(store):
    return [e.event for e in store.iter_log() if isinstance(e.event, (AlertRaised, AlertResolved))]


def test_a_failing_check_alerts_once_and_its_recovery_once(store):
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    watch.check()
    probe.disk = D(95)
    first = watch.check()
    watch.check(), watch.check()
    probe.disk = D(60)
    last = watch.check()
    watch.check()
    assert [e.check for e in first.raised] == ["disk"] and [e.check for e in last.resolved] == ["disk"]
    events = alert_events(store)
    assert [type(e).__name__ for e in events] == ["AlertRaised", "AlertResolved"]
    raised, resolved = events
    assert (raised.severity, raised.value, raised.threshold, raised.unit) == (Severity.P1, D(95), D(90), "%")
    assert resolved.raised_at == raised.occurred_at and resolved.value == D(60)
    assert [s for s, _, _ in sink.sent] == ["P1", "OK"]
    assert "Disk usage 95% is above the alert level 90%" in sink.sent[0][2]
    assert "What to do:" in sink.sent[0][2]
    assert sink.sent[1][1].startswith("[RESOLVED]") and "lasted 3 min" in sink.sent[1][2]


def test_between_target_and_alert_level_the_alert_stays_open(store):
    # Hysteresis: an alert raised above 90% resolves only once back within the 80% target.
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    probe.disk = D(91)
    watch.check()
    probe.disk = D(85)
    assert watch.check().resolved == []
    probe.disk = D("90.5")
    assert watch.check().raised == []
    probe.disk = D(79)
    assert len(watch.check().resolved) == 1
    assert len(sink.sent) == 2


def test_daily_loss_escalates_from_p1_to_p0_and_pages_both(store):
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    probe.daily_loss = D("2.5")
    watch.check()
    probe.daily_loss = D("3.1")
    watch.check()
    probe.daily_loss = D("2.6")  # back below the limit but not below the warning level: no change
    watch.check()
    assert [s for s, _, _ in sink.sent] == ["P1", "P0"]
    assert [e.severity for e in alert_events(store)] == [Severity.P1, Severity.P0]


def test_a_delivery_that_fails_is_retried_at_the_next_check_not_lost(store):
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    sink.failing = True
    probe.disk = D(95)
    outcome = watch.check()
    assert len(outcome.raised) == 1 and outcome.undelivered == 1
    assert len(alert_events(store)) == 1  # recorded even though the webhook was down
    sink.failing = False
    assert watch.check().undelivered == 0
    assert [s for s, _, _ in sink.sent] == ["P1"]


def test_two_watches_on_one_store_page_once(store, tmp_path):
    other_store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        sink_a, sink_b = RecordingSink(), RecordingSink()
        a, probe_a = make_watch(store, sink_a)
        b, probe_b = make_watch(other_store, sink_b)
        probe_a.disk = probe_b.disk = D(99)
        a.check(), b.check(), a.check(), b.check()
        assert len(sink_a.sent) + len(sink_b.sent) == 1
        probe_a.disk = probe_b.disk = D(10)
        b.check(), a.check()
        assert len(sink_a.sent) + len(sink_b.sent) == 2
        assert [type(e).__name__ for e in alert_events(store)] == ["AlertRaised", "AlertResolved"]
    finally:
        other_store.close()


def test_a_probe_that_raises_fails_every_check_instead_of_stopping_the_watch(store):
    sink = RecordingSink()

    def broken() -> HealthSample:
        raise RuntimeError("psutil exploded")

    watch = HealthWatch(store, broken, HealthThresholds(), sink, TickClock())
    outcome = watch.check()
    assert outcome.report.overall == "unhealthy"
    assert all(c.status == "critical" and "psutil exploded" in c.message for c in outcome.report.checks)


def test_background_thread_checks_until_stopped(store):
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    probe.disk = D(97)
    watch.start_background(0.02)
    deadline = time.monotonic() + 5
    while not sink.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.running
    with pytest.raises(RuntimeError):
        watch.start_background(0.02)
    watch.stop()
    assert not watch.running
    assert [s for s, _, _ in sink.sent] == ["P1"]
    assert watch.last is not None


def test_interval_must_be_positive(store):
    watch, _ = make_watch(store)
    with pytest.raises(ValueError):
        watch.start_background(0)


def test_losing_a_race_to_another_watcher_records_nothing_twice(store):
    # Watcher A raised; B decided on a stale view (no alert yet) and must not record a second one.
    sink = RecordingSink()
    a, probe_a = make_watch(store, RecordingSink())
    probe_a.disk = D(99)
    a.check()

    class StaleFirstLoad(HealthWatch):
        stale = True

        def _load(self, check):
            if check == "disk" and self.stale:
                self.stale = False
                return None
            return super()._load(check)

    clock = TickClock()
    probe_b = ScriptedProbe(clock)
    probe_b.disk = D(99)
    b = StaleFirstLoad(store, probe_b, HealthThresholds(), sink, clock)
    assert b.check().raised == []
    assert sink.sent == [] and len(alert_events(store)) == 1


def test_with_the_store_down_a_failure_still_pages_once_and_is_recorded_later_without_a_second_page(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    probe.disk = D(97)
    real_load = watch._load
    down = {"now": True}

    def load(check):
        if down["now"]:
            raise ConnectionError("event store unreachable")
        return real_load(check)

    watch._load = load
    try:
        watch.check(), watch.check()
        assert [s for s, _, _ in sink.sent] == ["P1"] and "not recorded in the event log" in sink.sent[0][2]
        down["now"] = False
        assert [e.check for e in watch.check().raised] == ["disk"]  # recorded once the store is back
        assert len(sink.sent) == 1  # ... without paging a second time
        probe.disk = D(10)
        watch.check()
        assert [s for s, _, _ in sink.sent] == ["P1", "OK"]
    finally:
        store.close()


def test_a_failure_paged_while_the_store_was_down_gets_its_recovery_message_too(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    sink = RecordingSink()
    watch, probe = make_watch(store, sink)
    real_load, down = watch._load, {"now": True}
    watch._load = lambda check: (_ for _ in ()).throw(ConnectionError("down")) if down["now"] else real_load(check)
    try:
        probe.disk = D(97)
        watch.check()
        probe.disk = D(10)
        watch.check(), watch.check()  # recovered while the store is still down: one recovery page
        probe.disk = D(97)
        watch.check()
        down["now"] = False
        probe.disk = D(10)
        watch.check(), watch.check()  # store back, check fine: the page sent in the outage is closed
        assert [s for s, _, _ in sink.sent] == ["P1", "OK", "P1", "OK"]
        assert alert_events(store) == []
    finally:
        store.close()
