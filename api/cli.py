"""The `tradecore` command line: every short-lived way in for operators and auditors."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli_common import ConfigOption, StoreOption, fail, opened_store, parse_utc, resolve_store_url
from application.errors import StoreUnavailable
from domain.events import event_classes
from infrastructure.eventstore.chain import verify_chain

app = typer.Typer(
    name="tradecore",
    help="Event-sourced trading core: every candle, decision, order and fill is an event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
audit_app = typer.Typer(help="Tamper evidence and exports for auditors.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

console = Console(soft_wrap=True)


# Command groups that live in their own modules, each with register(app).
COMMAND_MODULES = (
    "api.trading_commands", "api.project_commands", "api.report_commands", "api.control_commands",
    "api.replay_commands", "api.backup_commands", "api.serve_commands", "api.run_commands",
    "api.health_commands", "api.data_fetch_commands",
)


def _mount_optional() -> None:
    """Sub-apps that live in their own modules (a module not written yet is skipped)."""
    import importlib
    import importlib.util

    from api.config_commands import config_app

    app.add_typer(config_app, name="config")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


def _parse_time(text: str | None, option: str) -> datetime | None:
    return None if text is None else parse_utc(text, option)


@app.command("events")
def events_command(
    type_: Annotated[Optional[list[str]], typer.Option("--type", help="Event type, e.g. OrderFilled (repeatable)")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only events that occurred at or after this ISO time")] = None,
    until: Annotated[Optional[str], typer.Option(help="Only events that occurred before this ISO time")] = None,
    after: Annotated[int, typer.Option(help="Start after this notification id (the paging cursor)")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many events", min=1, max=1_000_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Page through the log in order: id, occurred_at, type, actor, correlation, payload."""
    since_at, until_at = _parse_time(since, "--since"), _parse_time(until, "--until")
    topics: list[str] = []
    if type_:
        known = event_classes()
        unknown = [t for t in type_ if t not in known]
        if unknown:
            fail(f"unknown event type(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        from infrastructure.eventstore.mapper import _topic

        topics = [_topic(known[t]) for t in type_]
    shown = 0
    last_id = after
    with opened_store(resolve_store_url(store, config)) as trading:
        for logged in trading.iter_log(after=after, topics=topics):
            last_id = logged.notification_id
            event = logged.event
            if since_at and event.occurred_at < since_at:
                continue
            if until_at and event.occurred_at >= until_at:
                continue
            row = {
                "notification_id": logged.notification_id,
                "occurred_at": event.occurred_at.isoformat(),
                "type": event.event_type,
                "event_id": str(event.event_id),
                "stream_id": str(event.originator_id),
                "version": event.originator_version,
                "actor": event.actor,
                "correlation_id": str(event.correlation_id) if event.correlation_id else None,
                "causation_id": str(event.causation_id) if event.causation_id else None,
                "run_id": str(event.run_id) if event.run_id else None,
                "payload": event.payload(),
            }
            if as_json:
                sys.stdout.write(json.dumps(row, separators=(",", ":")) + "\n")
            else:
                payload = json.dumps(row["payload"], separators=(",", ":"))
                if len(payload) > 160:
                    payload = payload[:157] + "..."
                console.print(
                    f"{row['notification_id']:>8}  {row['occurred_at']}  {row['type']:<22} {row['actor']:<10} "
                    f"{(row['correlation_id'] or '-')[:8]:<8}  {payload}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            shown += 1
            if shown >= limit:
                break
    if not as_json:
        console.print(f"[dim]{shown} event(s); next page: --after {last_id}[/dim]")


@app.command("catalogue")
def catalogue_command() -> None:
    """Print the event catalogue (Markdown): every event, its fields and meaning."""
    from api.catalogue import render_catalogue

    sys.stdout.write(render_catalogue())


@audit_app.command("verify")
def audit_verify(
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute the hash chain; exit 1 naming the first bad notification id."""
    with opened_store(resolve_store_url(store, config)) as trading:
        report = verify_chain(trading.recorder)
    if as_json:
        print(json.dumps(report.__dict__))
    elif report.ok:
        console.print(f"log intact: {report.checked} events, last id {report.last_id}, chain head {report.head}")
    else:
        console.print(f"[red]log NOT intact[/red]: first bad notification id {report.bad_notification_id}: {report.problem}")
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    """Console-script entry point."""
    _mount_optional()
    try:
        app()
    except StoreUnavailable as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
