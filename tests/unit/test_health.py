"""Health checks: thresholds judged purely, and the alert stream's de-duplication by state."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from application.health.api_calls import ApiCallMeter
from application.health.watch import (
    CHECKS,
    HealthSample,
    HealthThresholds,
    Threshold,
    evaluate,
    market_data_threshold,
)
from domain.alerts import Alert, AlertRaised, AlertResolved, alert_id, more_severe
from domain.control import Severity
from domain.events import DomainError, EventMeta
from api.bootstrap import health_thresholds
from infrastructure.settings.loading import ConfigurationError, load_settings

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def sample(**values) -> HealthSample:
    return HealthSample(T0, **{k: (None if v is None else D(str(v))) for k, v in values.items()})


# --- evaluate ------------------------------------------------------------------------------------


def test_values_within_target_are_ok_and_the_report_is_healthy():
    report = evaluate(sample(memory=500, system_memory=40, cpu=20, disk=50, daily_loss="0.5"), HealthThresholds())
    assert {c.name: c.status for c in report.checks if c.value is not None} == {
        "memory": "ok", "system_memory": "ok", "cpu": "ok", "disk": "ok", "daily_loss": "ok"}
    assert report.overall == "healthy"
    assert all(c.severity is None for c in report.checks)


def test_past_the_target_warns_and_past_the_alert_level_is_critical_with_the_checks_severity():
    report = evaluate(sample(cpu=75, disk="90.01"), HealthThresholds())
    cpu, disk = report.check("cpu"), report.check("disk")
    assert (cpu.status, cpu.severity, cpu.threshold) == ("warn", None, D(70))
    assert (disk.status, disk.severity, disk.threshold) == ("critical", Severity.P1, D(90))
    assert "Disk usage 90.01% is above the alert level 90%" == disk.message
    assert report.overall == "unhealthy"


def test_exactly_at_the_manuals_alert_level_is_not_yet_an_alert():
    # The manual says "Alert >80%": 80 itself is past the target (warn), not critical.
    assert evaluate(sample(cpu=80), HealthThresholds()).check("cpu").status == "warn"


def test_a_p2_check_failing_degrades_but_does_not_make_the_bot_unhealthy():
    report = evaluate(sample(cpu=95), HealthThresholds())
    assert report.check("cpu").severity is Severity.P2
    assert report.overall == "degraded"


def test_llm_response_rate_is_judged_from_below():
    th = HealthThresholds()
    assert evaluate(sample(llm_response_rate=96), th).check("llm_response_rate").status == "ok"
    assert evaluate(sample(llm_response_rate=93), th).check("llm_response_rate").status == "warn"
    low = evaluate(sample(llm_response_rate="89.9"), th).check("llm_response_rate")
    assert (low.status, low.severity) == ("critical", Severity.P1)
    assert "below the alert level 90%" in low.message


def test_daily_loss_pages_p1_near_the_limit_and_p0_at_it():
    th = HealthThresholds(daily_loss=Threshold(D(3), D("2.4"), inclusive=True))
    near = evaluate(sample(daily_loss="2.4"), th).check("daily_loss")
    at = evaluate(sample(daily_loss="3"), th).check("daily_loss")
    assert (near.status, near.severity) == ("warn", Severity.P1)
    assert (at.status, at.severity) == ("critical", Severity.P0)
    assert evaluate(sample(daily_loss="-1.5"), th).check("daily_loss").status == "ok"  # a gain


def test_unmeasured_checks_are_skipped_with_the_reason_and_do_not_count():
    s = HealthSample(T0, cpu=D(10), notes={"api_error_rate": "no exchange API call in the last 15 min"})
    report = evaluate(s, HealthThresholds())
    api = report.check("api_error_rate")
    assert api.status == "skipped" and "no exchange API call" in api.message
    assert report.overall == "healthy"


def test_a_measurement_that_failed_fails_its_check():
    s = HealthSample(T0, errors={"daily_loss": "OperationalError: database is locked"})
    check = evaluate(s, HealthThresholds()).check("daily_loss")
    assert (check.status, check.severity) == ("critical", Severity.P0)
    assert "could not be measured" in check.message and "database is locked" in check.message


def test_report_as_dict_has_every_check_in_order():
    data = evaluate(sample(cpu=10), HealthThresholds()).to_dict()
    assert [c["name"] for c in data["checks"]] == [c.name for c in CHECKS]
    assert data["status"] == "healthy" and data["checks"][2]["value"] == 10.0


# --- thresholds from the settings ----------------------------------------------------------------


def test_default_thresholds_are_the_operations_manuals():
    th = health_thresholds(load_settings(env={}))
    assert (th.cpu.target, th.cpu.alert) == (D(70), D(80))
    assert (th.disk.target, th.disk.alert) == (D(80), D(90))
    assert (th.system_memory.target, th.system_memory.alert) == (D(80), D(90))
    assert th.memory.alert == D(1500)
    assert (th.api_error_rate.target, th.api_error_rate.alert) == (D(1), D(5))
    assert (th.api_response_time.target, th.api_response_time.alert) == (D(1000), D(5000))
    assert (th.llm_response_rate.target, th.llm_response_rate.alert) == (D(95), D(90))
    # 1h candles seen up to one 60 s tick late, plus the manual's 5 s target / 30 s alert
    assert (th.market_data_age.target, th.market_data_age.alert) == (D(3665), D(3690))
    assert (th.daily_loss.target, th.daily_loss.alert) == (D("2.4"), D(3))


def test_the_pure_defaults_equal_the_default_settings():
    assert health_thresholds(load_settings(env={})) == HealthThresholds()


def test_thresholds_follow_the_configuration():
    settings = load_settings(env={"RISK__MAX_DAILY_LOSS_PCT": "5", "TRADING__GRANULARITY": "5m",
                                  "MONITORING__MARKET_DATA_STALE_SECONDS": "120", "SYSTEM__UPDATE_FREQUENCY_SECONDS": "10"})
    th = health_thresholds(settings)
    assert th.daily_loss.alert == D(5) and th.daily_loss.target == D(4)
    assert th.market_data_age.alert == D(300 + 10 + 120)


def test_a_target_beyond_its_alert_level_is_refused_naming_both():
    with pytest.raises(ConfigurationError) as exc:
        load_settings(env={"MONITORING__CPU_TARGET_PCT": "90"})
    assert "cpu_target_pct" in str(exc.value.errors) and "cpu_alert_pct" in str(exc.value.errors)


def test_market_data_threshold_adds_the_candle_and_the_tick():
    th = market_data_threshold(60, 5, 5, 30)
    assert (th.target, th.alert) == (D(70), D(95))


# --- API call meter ------------------------------------------------------------------------------


class StepClock:
    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_api_meter_counts_errors_and_p95_within_its_window_only():
    clock = StepClock(T0)
    meter = ApiCallMeter(clock, timedelta(minutes=15))
    assert meter.error_rate_pct() is None and meter.response_p95_ms() is None
    for i in range(19):
        meter.record(True, 100 + i)
    meter.record(False, 9000)
    assert meter.error_rate_pct() == D(5)
    assert meter.response_p95_ms() == D(118)  # the 19th of 20 sorted latencies
    clock.at = T0 + timedelta(minutes=16)
    assert meter.error_rate_pct() is None  # all calls aged out
    meter.record(False, 50)
    assert meter.error_rate_pct() == D(100)


# --- the alert aggregate -------------------------------------------------------------------------


def meta(minutes: int = 0) -> EventMeta:
    return EventMeta(T0 + timedelta(minutes=minutes), "health")


FIELDS = dict(status="critical", value=D(95), threshold=D(90), unit="%", message="Disk usage 95% is above 90%")


def test_an_alert_is_raised_once_while_its_check_keeps_failing():
    alert = Alert.first("disk", meta(), severity=Severity.P1, **FIELDS)
    assert alert.active and alert.severity is Severity.P1 and alert.id == alert_id("disk")
    assert alert.raise_alert(meta(1), severity=Severity.P1, **FIELDS) is False
    assert alert.raise_alert(meta(2), severity=Severity.P2, **FIELDS) is False  # less severe: nothing new
    assert [type(e) for e in alert.collect_events()] == [AlertRaised]


def test_an_escalation_raises_again_with_the_higher_severity():
    alert = Alert.first("daily_loss", meta(), severity="P1", **FIELDS)
    assert alert.raise_alert(meta(5), severity="P0", **FIELDS) is True
    events = alert.collect_events()
    assert [e.severity for e in events] == [Severity.P1, Severity.P0]
    assert alert.raised_at == T0  # the episode began with the first raise


def test_resolve_once_then_a_new_failure_is_a_new_episode():
    alert = Alert.first("disk", meta(), severity="P1", **FIELDS)
    assert alert.resolve(meta(10), value=D(70), threshold=D(80), unit="%", message="back") is True
    assert alert.resolve(meta(11), value=D(70), threshold=D(80), unit="%", message="back") is False
    assert alert.raise_alert(meta(20), severity="P1", **FIELDS) is True
    events = alert.collect_events()
    assert [type(e) for e in events] == [AlertRaised, AlertResolved, AlertRaised]
    assert events[1].raised_at == T0 and alert.episodes == 2 and alert.raised_at == T0 + timedelta(minutes=20)


def test_replaying_an_alerts_events_rebuilds_its_state():
    alert = Alert.first("cpu", meta(), severity="P2", **FIELDS)
    alert.resolve(meta(3), value=D(10), threshold=D(70), unit="%", message="ok")
    alert.raise_alert(meta(9), severity="P2", **FIELDS)
    events = alert.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert (replayed.active, replayed.severity, replayed.version, replayed.episodes) == (True, Severity.P2, 3, 2)


def test_an_alert_needs_a_check_name_and_a_known_severity():
    with pytest.raises(DomainError):
        Alert.first(" ", meta(), severity="P1", **FIELDS)
    with pytest.raises(DomainError):
        Alert.first("disk", meta(), severity="P7", **FIELDS)


def test_severity_order_p0_is_the_most_severe():
    assert more_severe("P0", "P1") and not more_severe("P2", "P2") and not more_severe("P3", "P0")


def test_a_halt_is_a_p1_failure_with_its_reason_and_a_running_bot_is_ok():
    th = HealthThresholds()
    halted = evaluate(HealthSample(T0, trading_halted=D(1), details={"trading_halted": "by risk (P1): rapid loss"}), th)
    check = halted.check("trading_halted")
    assert (check.status, check.severity) == ("critical", Severity.P1)
    assert check.message == "Trading is halted: by risk (P1): rapid loss"
    running = evaluate(HealthSample(T0, trading_halted=D(0)), th).check("trading_halted")
    assert (running.status, running.message) == ("ok", "Trading is running")
