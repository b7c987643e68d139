"""`tradecore health [--watch]`: the operations manual's health checks, once or continuously.

One-shot: measure, judge, print (``--bot ID``: that bot's run, halts and alerts besides those every bot
shares; without it, the latest active run and every bot's alerts); exit 0 when healthy, 1 when degraded or
unhealthy, 2 on bad input or an unusable store. It records nothing and sends
nothing. ``--watch`` checks every ``--interval`` seconds, records
``AlertRaised`` / ``AlertResolved`` events and sends them to the alert webhook
(``system.alert_webhook_url``) and the log, until interrupted (or ``--ticks``).
"""

from __future__ import annotations

import json
import signal
from typing import Annotated, Optional

import typer

import domain.alerts  # noqa: F401 - registers AlertRaised/AlertResolved for `tradecore events --type`
from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store
from application.errors import StoreUnavailable


def _line(check) -> str:
    value = "-" if check.value is None else f"{check.value}{check.unit}"
    severity = check.severity.value if check.severity else "  "
    return f"  {check.status:<8} {severity:<2}  {check.name:<18} {value:>14}   {check.message}"


def _print_report(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(f"health: {report.overall} (checked {report.taken_at.isoformat()})")
    for check in report.checks:
        typer.echo(_line(check))


def health_command(
    watch: Annotated[bool, typer.Option("--watch", help="Keep checking; record and send alerts (Ctrl-C stops)")] = False,
    interval: Annotated[Optional[float], typer.Option(
        "--interval", min=0.1, help="Seconds between checks with --watch (default monitoring.check_interval_seconds)"
    )] = None,
    ticks: Annotated[int, typer.Option("--ticks", min=0, help="With --watch: stop after this many checks (0: never)")] = 0,
    bot: Annotated[Optional[str], typer.Option(
        "--bot", help="One bot's health: its active run, its halts and its alerts (its id: `tradecore bots`)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON (one object per check round)")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Check memory, CPU, disk, API errors and latency, market-data age, LLM response rate, daily loss, halts.

    Exit code (one-shot): 0 healthy, 1 degraded or unhealthy, 2 bad input or unusable store.
    """
    from api.bootstrap import health_watch, wall_clock

    if interval is not None and not watch:
        fail("--interval needs --watch")
    if ticks and not watch:
        fail("--ticks needs --watch")
    settings = load_cli_settings(config, {"eventstore.url": store} if store else None)
    clock = wall_clock()
    with opened_store(settings.eventstore.url, read_only=True) as trading:  # never create a store to check it
        try:
            from application.operations.bots import bot_runs

            known = sorted(bot_runs(trading))
            if bot is not None:
                if bot not in known:
                    fail(f"no bot {bot!r} has run on this store (bots: {', '.join(known) or 'none yet'}); "
                         f"leave out --bot for the health of every bot")
            if not watch:
                report = one_shot(settings, trading, clock, bot, known)
                _print_report(report, as_json)
                raise typer.Exit(0 if report.overall == "healthy" else 1)
            _watch(health_watch(settings, trading, clock, **({"scope": bot} if bot else {})),
                   interval or settings.monitoring.check_interval_seconds, ticks, as_json)
        except StoreUnavailable as exc:
            fail(str(exc))


def one_shot(settings, trading, clock, bot: str | None = None, bots: list[str] | None = None):
    """The one verdict (application/health/verdict.py), as a one-shot command can measure it: of one bot
    (its latest paper/live run, its halts and alerts, and those every bot shares) or of every bot."""
    from api.bootstrap import health_probe, health_thresholds
    from application.health.verdict import (active_alerts, alert_scopes, alerts_check, read_model_check, report_with,
                                            store_check)

    probe = health_probe(settings, trading, clock, cpu_interval=0.3, measure_process=False, bot=bot)
    extra = [store_check(True, f" (last notification {trading.max_notification_id()})"),
             read_model_check("skipped", "Read model lag not measured: only a read node owns a read model "
                              "(GET /health of tradecore serve or tradecore run)"),
             alerts_check(active_alerts(trading, alert_scopes(bot, bots or ())))]
    return report_with(probe, lambda g: health_thresholds(settings, g), extra)


def _watch(watch, interval: float, ticks: int, as_json: bool) -> None:
    def on_tick(outcome) -> None:
        if as_json:
            data = outcome.report.to_dict()
            data["raised"] = [{"check": e.check, "severity": e.severity.value} for e in outcome.raised]
            data["resolved"] = [{"check": e.check, "severity": e.severity.value} for e in outcome.resolved]
            data["undelivered"] = outcome.undelivered
            typer.echo(json.dumps(data))
            return
        changes = [f"raised {e.check} ({e.severity.value})" for e in outcome.raised]
        changes += [f"resolved {e.check}" for e in outcome.resolved]
        failing = [c.name for c in outcome.report.checks if c.status in ("warn", "critical")]
        typer.echo(f"{outcome.report.taken_at.isoformat()} {outcome.report.overall}"
                   f"{' failing: ' + ', '.join(failing) if failing else ''}"
                   f"{'; ' + '; '.join(changes) if changes else ''}"
                   f"{f'; {outcome.undelivered} alert(s) waiting for the webhook' if outcome.undelivered else ''}")

    previous = signal.signal(signal.SIGTERM, lambda *_: watch.stop(timeout=0))
    try:
        watch.run(interval, ticks or None, on_tick)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    app.command("health")(health_command)
