"""The `tradecore` command line: every short-lived way in for operators and auditors."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, opened_store, parse_utc, resolve_store_url
from domain.events import event_classes

app = typer.Typer(
    name="tradecore",
    help="Event-sourced trading core: every candle, decision, order and fill is an event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
audit_app = typer.Typer(help="Tamper evidence and exports for auditors.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="On failure show the Python traceback (also SYSTEM__LOG_LEVEL=DEBUG); may stand anywhere")] = False,
) -> None:
    # main() takes --debug out of the arguments wherever it stands (api/cli/errors.py); this lists it in --help.
    pass

console = Console(soft_wrap=True)


# Command groups that live in their own modules, each with register(app).
COMMAND_MODULES = (
    "api.cli.trading", "api.cli.project", "api.cli.report", "api.cli.control",
    "api.cli.replay", "api.cli.backup", "api.cli.serve", "api.cli.run",
    "api.cli.health", "api.cli.data", "api.cli.doctor", "api.cli.logs", "api.cli.maintenance",
)


def _mount_optional() -> None:
    """Sub-apps that live in their own modules (a module not written yet is skipped)."""
    import importlib
    import importlib.util

    from api.cli.config import config_app

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
        from api.bootstrap import event_topic

        topics = [event_topic(known[t]) for t in type_]
    shown = 0
    last_id = after
    with opened_store(resolve_store_url(store, config), read_only=True) as trading:
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
    from api.cli.catalogue import render_catalogue

    sys.stdout.write(render_catalogue())


@audit_app.command("verify")
def audit_verify(
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    export: Annotated[
        Optional[Path], typer.Option("--export", help="Check an export file (and FILE.manifest.json) on its own, not the store")
    ] = None,
    anchor: Annotated[
        Optional[str],
        typer.Option("--anchor", help="Also check signed anchors: a FILE, a directory (e.g. the backup destination) or s3://bucket/prefix"),
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first bad notification id, or an anchor the log no longer reaches or contradicts."""
    if export is not None:
        _verify_export(export, as_json)
        return
    from api.bootstrap import verify_log

    key = _anchor_key(config, "--anchor") if anchor is not None else None
    with opened_store(resolve_store_url(store, config), read_only=True) as trading:
        report = verify_log(trading)
        anchors = _check_anchors(anchor, key, report.last_id, trading.recorder.link_at) if anchor is not None else None
    ok = report.ok and not (anchors and anchors["problems"])
    if as_json:
        print(json.dumps({**report.__dict__, **({"anchors": anchors} if anchors is not None else {}), "ok": ok}))
        raise typer.Exit(0 if ok else 1)
    if report.ok:
        console.print(f"log intact: {report.checked} events, last id {report.last_id}, chain head {report.head}")
    else:
        console.print(f"[red]log NOT intact[/red]: first bad notification id {report.bad_notification_id}: {report.problem}")
    if anchors is not None:
        for problem in anchors["problems"]:
            console.print(f"[red]anchor NOT matched[/red]: {problem}", highlight=False)
        if not anchors["problems"]:
            console.print(f"extends all {anchors['checked']} anchor(s) in {anchor} (newest at notification {anchors['newest']})")
    raise typer.Exit(0 if ok else 1)


def _anchor_key(config: Path | None, option: str) -> bytes:
    from api.cli.common import load_cli_settings

    key = load_cli_settings(config).audit.anchor_key
    if key is None:
        fail(f"{option} needs the anchor key: set AUDIT__ANCHOR_KEY (audit.anchor_key), the key anchors are signed with")
    return key.get_secret_value().encode()


def _check_anchors(source: str, key: bytes, last_id: int, link_at) -> dict:
    """Every anchor at SOURCE checked against the log: signature, then reach and link."""
    from api.bootstrap import notary
    from application.errors import StorageError
    from application.operations.anchors import check_anchors

    try:
        return check_anchors(notary(), source, key, last_id, link_at).as_dict()
    except StorageError as exc:
        fail(str(exc))


@audit_app.command("anchor")
def audit_anchor(
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the anchor to this FILE (or into this directory)")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Write the anchor under s3://bucket/prefix (Object Lock retention when the bucket has it)")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the chain, then write a signed checkpoint of its head (notification id, head, time) outside the store."""
    from api.bootstrap import notary, store_location, wall_clock
    from api.cli.common import load_cli_settings
    from application.errors import StorageError
    from application.operations.anchors import LogNotIntact, anchor_head, intact_head

    if (output is None) == (to is None):
        fail("give one of --output FILE or --to s3://bucket/prefix")
    if to is not None and not to.startswith("s3://"):
        fail(f"--to {to!r} is not s3://bucket/prefix (use --output for a file)")
    key = _anchor_key(config, "audit anchor")
    url = resolve_store_url(store, config)
    with opened_store(url, read_only=True) as trading:
        try:
            report = intact_head(trading, notary())
        except LogNotIntact as exc:
            fail(f"refused: {exc}; an anchor would vouch for it", 1)
    now = wall_clock().now()
    try:
        anchored = anchor_head(notary(), report.last_id, report.head, target=str(output) if output is not None else to,
                               now=now, store_name=store_location(url).redacted(), key=key,
                               retention_days=load_cli_settings(config).audit.anchor_retention_days)
    except StorageError as exc:
        fail(str(exc))
    anchor, written = anchored.anchor, anchored.written
    if as_json:
        print(json.dumps({"where": written.where, "notification_id": anchor.notification_id, "chain_head": anchor.chain_head,
                          "created_at": anchor.created_at, "key_id": anchor.key_id, "retain_until": written.retain_until,
                          "lock_mode": written.lock_mode}))
        return
    lock = f"; Object Lock {written.lock_mode} until {written.retain_until}" if written.retain_until else ""
    console.print(f"anchor written to {written.where}: notification {anchor.notification_id}, chain head {anchor.chain_head}{lock}",
                  highlight=False)


def _verify_export(path: Path, as_json: bool) -> None:
    from api.bootstrap import backup_shelf
    from application.errors import ArchiveProblem

    try:
        manifest = backup_shelf().verify_export(path)
    except ArchiveProblem as exc:
        if as_json:
            print(json.dumps({"ok": False, "export": str(path), "problem": str(exc)}))
            raise typer.Exit(1)
        fail(f"export NOT ok: {exc}", 1)
    if as_json:
        print(json.dumps({"ok": True, "export": str(path), "events": manifest.event_count, "first_id": manifest.first_id,
                          "last_id": manifest.last_id, "chain_start": manifest.chain_start, "chain_head": manifest.chain_head}))
    else:
        console.print(f"export ok: {path}: {manifest.event_count} events, ids {manifest.first_id}..{manifest.last_id}, "
                      f"chain {manifest.chain_start[:12]}.. -> head {manifest.chain_head}")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", help="The file to write (FILE.manifest.json is written beside it)")],
    format_: Annotated[str, typer.Option("--format", help="jsonl (gzip when FILE ends in .gz) or parquet")] = "jsonl",
    from_: Annotated[Optional[str], typer.Option("--from", help="From the first event that occurred at or after this ISO time")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="To the last event that occurred before this ISO time")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Export a contiguous slice of the log with ids, topics, payloads and chain links, plus a manifest."""
    from api.bootstrap import backup_shelf, code_version, store_location, wall_clock
    from application.errors import ArchiveProblem

    if format_ not in ("jsonl", "parquet"):
        fail(f"--format {format_!r} is not jsonl or parquet")
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    if start and end and start >= end:
        fail(f"--from {from_} is not before --to {to}")
    if output.is_dir():
        fail(f"--output {output} is a directory; name a file")
    url = resolve_store_url(store, config)
    shelf = backup_shelf()
    with opened_store(url, read_only=True) as trading:
        try:
            exported = shelf.export(trading, output, events_format=format_, now=wall_clock().now(), start=start, end=end,
                                    source=store_location(url).redacted(), code_version=code_version())
        except OSError as exc:
            fail(f"cannot write {output}: {exc}")
        except ArchiveProblem as exc:
            fail(f"export refused, nothing written: {exc}", 1)
    m = exported.manifest
    if as_json:
        print(json.dumps({"output": str(output), "manifest": str(shelf.manifest_path(output)), "events": m.event_count,
                          "first_id": m.first_id, "last_id": m.last_id, "chain_head": m.chain_head, "sha256": m.files[0].sha256}))
        return
    span = f"ids {m.first_id}..{m.last_id}" if m.event_count else "no events in that range"
    console.print(f"exported {m.event_count} events ({span}) to {output}; manifest {shelf.manifest_path(output)}; "
                  f"chain head {m.chain_head}")


def main() -> None:
    """Console-script entry point."""
    from api.bootstrap import process_log

    process_log().configure_from_environment()  # JSON lines on stderr; `run` and `serve` switch to their log file
    _mount_optional()
    from api.cli.errors import run_guarded

    run_guarded(app_for([a for a in sys.argv[1:] if a != "--debug"]))  # every failure ends as one line; a traceback only with --debug


def app_for(args: list[str]) -> typer.Typer:
    """The app with only the command or group ``args`` start with, when that is the exact name of one: typer builds
    the click command of every command an app holds (their options, from each function's signature) before it
    runs one, ~0.04 s of CPU for all of them. Anything else (no name, an option first, a name it does not know,
    whose message lists the others) gets the whole app. The one-command app is a copy; ``app`` keeps them all."""
    import copy

    name = args[0] if args else ""
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if len(commands) + len(groups) != 1 or any(c.name is None for c in app.registered_commands) \
            or any(g.name is None for g in app.registered_groups):
        return app
    trimmed = copy.copy(app)
    trimmed.registered_commands, trimmed.registered_groups = commands, groups
    return trimmed


if __name__ == "__main__":  # pragma: no cover
    main()
