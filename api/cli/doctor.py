"""CLI: `tradecore doctor [--json] [--send-test]`: check everything the bot needs before starting it.

Exit 0: every check ok (warnings allowed); 1: a check failed; 2: the configuration is invalid
(then nothing else is checked: every other check depends on it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption

MARKS = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)


def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object")] = False,
    send_test: Annotated[bool, typer.Option("--send-test", help="Also send a test message to the webhook and by email")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Check configuration, store, read model, Coinbase (clock skew, keys), the LLM, alert channels, disk, file modes."""
    from api.bootstrap import coinbase_client, configuration, data_path, doctor_probes, open_store, process_log
    from application.operations.doctor import Check, DoctorReport, checkup

    overrides = {"eventstore.url": store} if store else None
    errors = configuration().settings_errors(config, None, overrides)
    if errors:
        report = DoctorReport(tuple(Check("config", "fail", str(e), "fix it, then `tradecore config validate`")
                                    for e in errors))
        _print(report, as_json)
        raise typer.Exit(2)
    settings = _with_recorded_changes(config, overrides, configuration().load_settings(config, None, overrides))
    # one retry at most: a doctor that waits out the bot's full backoff on a dead venue helps nobody
    quick = settings.model_copy(update={"exchange": settings.exchange.model_copy(update={"max_attempts": 2})})
    logs = process_log()
    report = checkup(doctor_probes(), settings, open_store=open_store,
                     client_for=lambda auth: coinbase_client(quick, authenticated=auth), data_path=data_path,
                     log_file=logs.current_log_file() or logs.log_destination(settings, long_running=True),
                     config_file=config, send_test=send_test)
    _print(report, as_json)
    raise typer.Exit(report.exit_code)


def _with_recorded_changes(config: Path | None, overrides, settings):
    """The settings the bot would run with: recorded `config set` changes applied when the store opens."""
    from api.bootstrap import configuration, open_store
    from application.errors import ConfigurationError
    from application.operations.config_service import recorded_overrides

    sqlite = settings.eventstore.sqlite_path
    if sqlite is not None and not Path(sqlite).exists():
        return settings
    try:
        trading = open_store(settings.eventstore.url)
    except Exception:  # noqa: BLE001 - the store check reports it
        return settings
    try:
        recorded = recorded_overrides(trading)
    finally:
        trading.close()
    try:
        return configuration().load_settings(config, None, {**recorded, **(overrides or {})})
    except ConfigurationError:
        return settings


def _print(report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    console = Console(soft_wrap=True, highlight=False)
    width = max((len(c.name) for c in report.checks), default=8)
    for check in report.checks:
        line = f"{MARKS[check.status]}  {check.name:<{width}}  {_escape(check.figure)}"
        if check.action:
            line += f"\n      {'':<{width}}  [dim]-> {_escape(check.action)}[/dim]"
        console.print(line)
    failed = sum(c.status == "fail" for c in report.checks)
    warned = sum(c.status == "warn" for c in report.checks)
    console.print(f"{len(report.checks)} check(s): {failed} failed, {warned} warning(s)")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
