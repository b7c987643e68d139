"""One health verdict: ``tradecore health`` and ``GET /health`` judge the same checks the same way.

Both take a sample with the same probe (machine, disk, the active paper/live run's market data, daily
loss and LLM response rate, trading halts), judge it with ``evaluate`` against the same thresholds (for
the active run's bar size), and add the same three checks of their own:

- ``store``: the event store answers (critical P0 when it does not);
- ``read_model``: the read model keeps up with the log. Only a read node (``tradecore serve`` or the API
  of ``tradecore run``) owns one: the one-shot command reports it as skipped and says where to look;
- ``alerts``: alerts a health watch raised and has not resolved (read from their streams in the store,
  never from the read model, so both see the same): an active P0 alert is critical P0, any other warns.

Checks that need the running process itself (its memory, its exchange API call meter) are skipped in
both. The overall status is ``HealthReport.overall``: unhealthy when a P0/P1 check is critical, degraded
when anything else warns or fails, else healthy; a trading halt is deliberate, so it degrades and never
makes the bot unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from eventsourcing.application import AggregateNotFoundError

from application.health.watch import CHECKS, CheckResult, HealthReport, HealthThresholds, evaluate
from application.trading_app import TradingApplication
from domain.alerts import alert_id
from domain.control import Severity

__all__ = ["SHARED_SCOPE", "active_alerts", "alert_scopes", "alerts_check", "read_model_check", "report_with", "store_check"]


def store_check(reachable: bool, detail: str = "") -> CheckResult:
    """Whether the event store answered."""
    if reachable:
        return CheckResult("store", "ok", None, None, "", f"Event store answers{detail}")
    return CheckResult("store", "critical", None, None, "", f"Event store unreachable: {detail}", Severity.P0)


def read_model_check(status: str, message: str, severity: Severity | None = None) -> CheckResult:
    """The read model's lag behind the log (``skipped`` where this process owns no read model)."""
    return CheckResult("read_model", status, None, None, "", message, severity)


SHARED_SCOPE = "tradecore"  # alerts of a watch that is no bot's (`tradecore health --watch`), and those raised before bots


def alert_scopes(bot: str | None, bots: Iterable[str]) -> list[str]:
    """Whose alerts count: a bot's own and the shared ones; without a bot, the shared ones and those of every
    bot in ``bots`` (the bots that ran on the store: the log's or the read model's list)."""
    if bot is not None:
        return [bot, SHARED_SCOPE]
    return [SHARED_SCOPE, *sorted(b for b in set(bots) if b != SHARED_SCOPE)]


def active_alerts(store: TradingApplication, scopes: Sequence[str] = (SHARED_SCOPE,)) -> list[tuple[str, Severity, str]]:
    """(check, severity, since) of the health watches' alerts still active in ``scopes``, worst first; a
    bot's alert is named "<check> of bot <id>"."""
    found = []
    for scope in scopes:
        for spec in CHECKS:
            try:
                alert = store.repository.get(alert_id(spec.name, scope))
            except AggregateNotFoundError:
                continue
            if alert.active and alert.severity is not None:
                since = alert.raised_at.isoformat() if alert.raised_at else "?"
                name = spec.name if scope == SHARED_SCOPE else f"{spec.name} of bot {scope}"
                found.append((name, Severity(alert.severity), since))
    return sorted(found, key=lambda a: (a[1].value, a[0]))


def alerts_check(alerts: Sequence[tuple[str, Severity, str]]) -> CheckResult:
    """Active alerts of a health watch: a P0 one is critical, any other warns."""
    if not alerts:
        return CheckResult("alerts", "ok", Decimal(0), None, "", "No health alert is active")
    text = "; ".join(f"{check} ({severity.value}) active since {since}" for check, severity, since in alerts)
    worst = alerts[0][1]
    if worst is Severity.P0:
        return CheckResult("alerts", "critical", Decimal(len(alerts)), None, "", f"Active alerts: {text}", Severity.P0)
    return CheckResult("alerts", "warn", Decimal(len(alerts)), None, "", f"Active alerts: {text}")


def report_with(probe, thresholds_for: Callable[[str | None], HealthThresholds],
                extra: Sequence[CheckResult]) -> HealthReport:
    """Sample with ``probe``, judge against the thresholds of the active run's bar size, add ``extra``."""
    sample = probe.sample()
    run = probe.follower.run if getattr(probe, "follower", None) is not None else None
    granularity = run.granularity if run is not None and not run.ended else None
    report = evaluate(sample, thresholds_for(granularity))
    return HealthReport(report.taken_at, report.checks + tuple(extra))
