"""CLI: `tradecore logs analyze`: what the log and the event log say about a period.

Reads the log file and its rotations (``system.log_file``, default var/logs/tradecore.log) and
the event store; prints the text form (or --json) and writes reports/log_analysis_YYYYMMDD.json.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc

logs_app = typer.Typer(help="Read tradecore's logs: errors, outside calls, decisions and trades of a period.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(logs_app, name="logs")


@logs_app.command("analyze")
def analyze_command(
    since: Annotated[Optional[str], typer.Option(help="From this ISO time (default: 24 hours ago)")] = None,
    until: Annotated[Optional[str], typer.Option(help="Until this ISO time, exclusive (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON")] = False,
    log_file: Annotated[Optional[Path], typer.Option("--log-file", help="Log file (default system.log_file or "
                                                     "var/logs/tradecore.log); its rotations are read too")] = None,
    reports: Annotated[Path, typer.Option("--reports", help="Folder of the report file")] = Path("reports"),
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Errors and warnings by kind, venue/LLM calls per endpoint (p50/p95/max, error rate), decisions, trades, P&L."""
    from application.operations.log_analysis import analyse, read_lines, render_text
    from api.bootstrap import process_log

    now = datetime.now(timezone.utc)
    end = parse_utc(until, "--until") if until else now
    start = parse_utc(since, "--since") if since else end - timedelta(hours=24)
    if start >= end:
        fail(f"--since {start.isoformat()} is not before --until {end.isoformat()}")
    settings = load_cli_settings(config, {"eventstore.url": store} if store else None)
    path = log_file or process_log().analysed_log_file(settings)
    files = process_log().log_files(path)
    lines: list[str] = []
    for file in files:
        try:
            lines.extend(file.read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError as exc:
            fail(f"cannot read {file}: {exc}")
    records, unreadable = read_lines(lines, start, end)
    record, note = _trading(settings.eventstore.url, start, end)
    report = analyse(records, record, since=start, until=end, files=[str(f) for f in files], unreadable=unreadable)
    target = reports / f"log_analysis_{end:%Y%m%d}.json"
    try:
        reports.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {target}: {exc}")
    if note:
        report["note"] = note
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    if not files:
        sys.stdout.write(f"no log file at {path} (set SYSTEM__LOG_FILE or --log-file); the event log is analysed alone\n")
    if note:
        sys.stdout.write(note + "\n")
    sys.stdout.write(render_text(report))
    sys.stdout.write(f"report written to {target}\n")


def _trading(url: str, start: datetime, end: datetime):
    """The period's trading figures from the store, or empty ones and why when there is no store (never created)."""
    from application.operations.trade_record import TradeRecord, trade_record
    from api.bootstrap import store_location
    from application.errors import StoreURLError

    try:
        store_location(url, existing=True)
    except StoreURLError as exc:
        return TradeRecord(), f"no trading figures: {exc}"
    with opened_store(url, read_only=True) as trading:
        return trade_record(trading, start, end), None
