"""`tradecore backup create | list | verify | restore | prune`: the log's backups.

Backups are snapshots of the event log (the only thing worth keeping: the
read model is rebuilt from it); restores are replays into an empty store.
Exit codes: 0 ok, 1 a check failed (a damaged archive, a log that does not
match), 2 bad input or an unusable store, destination or target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc

backup_app = typer.Typer(help="Back up, verify, restore and prune snapshots of the event log.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)

DestOption = Annotated[Optional[str], typer.Option("--dest", help="Directory or s3://bucket/prefix (default backup.dest)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON")]


def register(app: typer.Typer) -> None:
    """Mount the `backup` group on the main CLI."""
    app.add_typer(backup_app, name="backup")


def _now():
    from api.bootstrap import wall_clock

    return wall_clock().now()


def _archives(dest: str):
    from api.bootstrap import backup_shelf
    from application.errors import StorageError

    try:
        return backup_shelf().open(dest)
    except StorageError as exc:
        fail(str(exc))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@backup_app.command("create")
def create(
    kind: Annotated[str, typer.Option("--kind", help="daily, weekly or monthly (retention counts each kind)")] = "daily",
    dest: DestOption = None,
    since_last: Annotated[bool, typer.Option("--since-last", help="Only the events after the newest backup (its child)")] = False,
    events_format: Annotated[Optional[str], typer.Option("--format", help="parquet or jsonl (default backup.format)")] = None,
    accept_rewind: Annotated[Optional[str], typer.Option(
        "--accept-rewind", help="Back up a log shorter than / different from the newest backup; the REASON is recorded in the manifest")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot the log while the bot keeps writing: events file + manifest (ids, count, chain head, sha256s).

    With audit.anchor_key set, a signed anchor of the backup's chain head is written beside it (anchor.json).
    """
    from api.bootstrap import backup_shelf, code_version, store_location
    from application.errors import ArchiveProblem, BackupRefused, StorageError

    shelf = backup_shelf()
    if kind not in shelf.kinds:
        fail(f"--kind {kind!r} is not one of {', '.join(shelf.kinds)}")
    if accept_rewind is not None and not accept_rewind.strip():
        fail("--accept-rewind needs a REASON (it is recorded in the manifest)")
    if accept_rewind is not None and since_last:
        fail("--accept-rewind goes with a full backup, not --since-last (an incremental must extend its parent)")
    settings = load_cli_settings(config)
    fmt = events_format or settings.backup.format
    if fmt not in ("parquet", "jsonl"):
        fail(f"--format {fmt!r} is not parquet or jsonl")
    url = store or settings.eventstore.url
    archives = _archives(dest or settings.backup.dest)
    with opened_store(url, read_only=True) as trading:  # a backup reads the log; a typo must not create one
        try:
            created = shelf.create(
                trading, archives, kind=kind, now=_now(), events_format=fmt, since_last=since_last,
                source=store_location(url).redacted(), code_version=code_version(), settings=settings.effective_config(),
                accept_rewind=accept_rewind,
            )
        except BackupRefused as exc:
            fail(str(exc), 1)
        except (StorageError, ArchiveProblem, OSError) as exc:
            fail(f"backup failed, nothing was published: {exc}")
    m = created.manifest
    anchored = _anchor_backup(created, settings)
    if as_json:
        print(json.dumps({"name": created.name, "where": created.where, "kind": m.kind, "parent": m.parent,
                          "events": m.event_count, "first_id": m.first_id, "last_id": m.last_id,
                          "chain_head": m.chain_head, "note": created.note, "anchor": anchored}))
        return
    if created.note:
        console.print(f"[yellow]note:[/yellow] {created.note}", markup=True)
    if anchored:
        console.print(f"signed anchor of notification {m.reach} written to {anchored}")
    span = f"ids {m.first_id}..{m.last_id}" if m.event_count else "no new events"
    parent = f", incremental on {m.parent}" if m.parent else ""
    console.print(f"backup {created.name} written to {created.where}: {m.event_count} events ({span}){parent}; "
                  f"chain head {m.chain_head}; {_size(m.files[0].bytes)}")


def _anchor_backup(created, settings) -> str | None:
    """Write a signed anchor of the backup's head beside it when audit.anchor_key is set (its location)."""
    from api.bootstrap import notary
    from application.errors import StorageError
    from application.operations.backups import anchor_backup

    key = settings.audit.anchor_key
    if key is None:
        return None
    try:
        return anchor_backup(notary(), created, now=_now(), key=key.get_secret_value().encode(),
                             retention_days=settings.audit.anchor_retention_days).written.where
    except StorageError as exc:
        fail(f"backup {created.name} was written, but its anchor was not: {exc}; run `tradecore audit anchor`", 1)


def _leftovers(archives, store: str | None, settings) -> tuple[list, object, str | None]:
    """(leftovers, store location, a note when the store could not be searched) of killed backups and restores."""
    from api.bootstrap import backup_shelf, store_location
    from application.errors import StoreURLError
    from application.operations.backups import leftovers_of

    try:
        location = store_location(store or settings.eventstore.url)
    except StoreURLError as exc:
        fail(str(exc))
    leftovers, note = leftovers_of(backup_shelf(), archives, location, _now())
    return leftovers, location, note


@backup_app.command("list")
def list_command(
    dest: DestOption = None, store: StoreOption = None, config: ConfigOption = None, as_json: JsonOption = False,
) -> None:
    """The archives in the destination, oldest first: kind, time, id range, size, parent; then what killed backups
    and restores (into --store, default eventstore.url) left behind."""
    from api.bootstrap import backup_shelf
    from application.errors import StorageError

    settings = load_cli_settings(config)
    archives = _archives(dest or settings.backup.dest)
    try:
        listed = backup_shelf().listing(archives)
    except StorageError as exc:
        fail(str(exc))
    leftovers, _, note = _leftovers(archives, store, settings)
    if as_json:
        print(json.dumps([
            *({"name": a.name, "complete": a.manifest is not None, "problem": a.problem, "size": a.size,
               **({"kind": a.manifest.kind, "created_at": a.manifest.created_at, "first_id": a.manifest.first_id,
                   "last_id": a.manifest.last_id, "events": a.manifest.event_count, "parent": a.manifest.parent,
                   "format": a.manifest.events_format} if a.manifest else {})}
              for a in listed),
            *({"name": left.where, "complete": False, "leftover": left.kind, "size": left.size, "in_use": left.in_use}
              for left in leftovers),
        ]))
        return
    table = Table(title=f"backups in {archives.location}")
    longest = max((len(a.name) for a in listed), default=4)
    for column in ("name", "kind", "created (UTC)", "ids", "events", "size", "parent"):
        # names are what an operator copies into verify/restore: never cut them
        table.add_column(column, justify="right" if column in ("events", "size") else "left",
                         no_wrap=column in ("name", "parent", "created (UTC)"),
                         min_width=longest if column in ("name", "parent") else None)
    for a in listed:
        m = a.manifest
        if m is None:
            table.add_row(a.name, "[red]INCOMPLETE[/red]", "-", "-", "-", _size(a.size), a.problem or "no manifest")
            continue
        ids = f"{m.first_id}..{m.last_id}" if m.event_count else "-"
        table.add_row(a.name, m.kind or "-", m.created_at[:19].replace("T", " "), ids, str(m.event_count), _size(a.size),
                      m.parent or "(full)")
    Console(soft_wrap=True, highlight=False, width=max(console.width, 2 * longest + 70)).print(table)
    if not listed:
        console.print(f"no backups in {archives.location}")
    for left in leftovers:
        console.print(f"LEFTOVER {left.describe()}; `tradecore backup prune` removes it", markup=False)
    if note:
        console.print(f"note: {note}", markup=False)


@backup_app.command("verify")
def verify(
    archive: Annotated[str, typer.Argument(help="Archive folder, NAME in --dest, s3://bucket/prefix/NAME, or 'latest'")],
    dest: DestOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check checksums and the whole chain (for an incremental, its parents too); exit 1 naming the problem."""
    from api.bootstrap import backup_shelf
    from application.errors import ArchiveProblem, StorageError

    settings = load_cli_settings(config)
    shelf = backup_shelf()
    try:
        archives, name = shelf.locate(archive, dest or settings.backup.dest)
        result = shelf.verify(archives, name)
    except StorageError as exc:
        fail(str(exc))
    except ArchiveProblem as exc:
        if as_json:
            print(json.dumps({"ok": False, "archive": archive, "problem": str(exc)}))
            raise typer.Exit(1)
        fail(f"archive NOT ok: {exc}", 1)
    if as_json:
        print(json.dumps({"ok": True, "archive": name, "chain": result.chain, "events": result.event_count,
                          "first_id": result.first_id, "last_id": result.last_id, "chain_head": result.chain_head}))
        return
    parents = f" (with {len(result.chain) - 1} parent(s): {', '.join(result.chain[:-1])})" if len(result.chain) > 1 else ""
    console.print(f"archive ok: {name}{parents}: {result.event_count} events, ids {result.first_id}..{result.last_id}, "
                  f"chain head {result.chain_head}")


@backup_app.command("restore")
def restore(
    archive: Annotated[str, typer.Argument(help="Archive folder, NAME in --dest, s3://bucket/prefix/NAME, or 'latest'")],
    to: Annotated[str, typer.Option("--to", help="Target store URL (sqlite:///PATH or postgresql://...); must be empty")],
    until: Annotated[Optional[str], typer.Option("--until", help="Last NOTIFICATION_ID, or ISO time: events that occurred up to it")] = None,
    force: Annotated[bool, typer.Option("--force", help="Move a non-empty target aside (renamed, never deleted)")] = False,
    readmodel: Annotated[Optional[Path], typer.Option("--readmodel", help="DuckDB file to rebuild (default: readmodel.path when --to is the configured store, else in memory)")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild/--no-rebuild", help="Rebuild every projection after the restore")] = True,
    dest: DestOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore into an empty store keeping the ids, verify the chain, rebuild every projection, print counts."""
    from api.bootstrap import backup_shelf, open_store, store_location
    from application.errors import ArchiveProblem, RestoreRefused, StorageError, StoreURLError

    settings = load_cli_settings(config)
    until_id = until_time = None
    if until is not None:
        if until.isdigit():
            until_id = int(until)
        else:
            until_time = parse_utc(until, "--until", "a notification id or an ISO-8601 time")
    try:
        target = store_location(to)
    except StoreURLError as exc:
        fail(str(exc))
    shelf = backup_shelf()
    try:
        archives, name = shelf.locate(archive, dest or settings.backup.dest)
        restored = shelf.restore(archives, name, to, open_store=open_store, now=_now(), until_id=until_id,
                                   until_time=until_time, force=force)
    except StorageError as exc:
        fail(str(exc))
    except RestoreRefused as exc:
        fail(f"restore refused: {exc}")
    except ArchiveProblem as exc:
        fail(f"restore failed, the target was not changed: {exc}", 1)
    result = {"archive": name, "archives": restored.archives, "target": target.redacted(), "events": restored.events,
              "last_id": restored.last_id, "chain_head": restored.chain_head, "moved_aside": restored.moved_aside,
              "until_id": restored.until_id}
    if not as_json:
        if restored.moved_aside:
            console.print(f"the old store was moved aside to {restored.moved_aside}")
        console.print(f"restored {restored.events} events (ids up to {restored.last_id}) from {', '.join(restored.archives)} "
                      f"into {target.redacted()}; chain verified, head {restored.chain_head}")
    if rebuild:
        result.update(_rebuild(to, readmodel, settings, as_json))
    if as_json:
        print(json.dumps(result))


def _rebuild(url: str, readmodel: Path | None, settings, quiet: bool) -> dict:
    """Replay the restored log into every projection; the table counts and checksums."""
    import time

    from api.bootstrap import open_store
    from projections.engine import runner

    path: str | Path = readmodel or (settings.readmodel.path if url == settings.eventstore.url else ":memory:")
    began = time.perf_counter()
    trading = open_store(url)
    try:
        try:
            con = runner.open_readmodel(path)
        except runner.ReadModelLocked as exc:
            fail(f"restored, but the read model was not rebuilt: {exc}; run `tradecore project --rebuild` later", 1)
        try:
            read = runner.rebuild(trading, con, runner.ALL_PROJECTIONS, settings.readmodel.batch_size)
            digests = runner.table_digests(con)
        finally:
            con.close()
    finally:
        trading.close()
    seconds = time.perf_counter() - began
    if not quiet:
        where = "in memory (pass --readmodel PATH to keep it)" if str(path) == ":memory:" else str(path)
        console.print(f"read model rebuilt {where}: {read} events replayed in {seconds:.1f} s")
        table = Table(title="read model")
        table.add_column("table")
        table.add_column("rows", justify="right")
        table.add_column("sha256")
        for name, (digest, rows) in sorted(digests.items()):
            table.add_row(name, str(rows), digest[:16])
        console.print(table)
    return {"readmodel": str(path), "replayed": read, "rebuild_seconds": round(seconds, 2),
            "tables": {name: {"rows": rows, "sha256": digest} for name, (digest, rows) in digests.items()}}


@backup_app.command("prune")
def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing")] = False,
    keep_daily: Annotated[Optional[int], typer.Option("--keep-daily", min=0, help="default backup.keep_daily (30)")] = None,
    keep_weekly: Annotated[Optional[int], typer.Option("--keep-weekly", min=0, help="default backup.keep_weekly (12)")] = None,
    keep_monthly: Annotated[Optional[int], typer.Option("--keep-monthly", min=0, help="default backup.keep_monthly (12)")] = None,
    dest: DestOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Keep the newest N daily, weekly and monthly archives, their parents, and every only copy of an event;
    remove what killed backups and restores (into --store, default eventstore.url) left behind."""
    from api.bootstrap import backup_shelf
    from application.errors import StorageError

    settings = load_cli_settings(config)
    b = settings.backup
    counts = {"daily": b.keep_daily if keep_daily is None else keep_daily,
              "weekly": b.keep_weekly if keep_weekly is None else keep_weekly,
              "monthly": b.keep_monthly if keep_monthly is None else keep_monthly}
    archives = _archives(dest or b.dest)
    shelf = backup_shelf()
    try:
        plan = shelf.prune(archives, counts, dry_run=dry_run)
    except StorageError as exc:
        fail(str(exc))
    leftovers, location, note = _leftovers(archives, store, settings)
    removed, busy = [], []
    for left in leftovers:
        if left.in_use:
            busy.append(left.where)
            continue
        if not dry_run:
            try:
                shelf.remove_leftover(left, location)
            except (OSError, ValueError) as exc:
                fail(f"could not remove {left.where}: {exc}")
        removed.append(left.where)
    if as_json:
        print(json.dumps({"dry_run": dry_run, "keep": plan.keep, "delete": plan.delete, "incomplete": plan.incomplete,
                          "leftovers_removed": removed, "leftovers_in_use": busy, "note": note}))
        return
    verb = "would delete" if dry_run else "deleted"
    for where in removed:
        console.print(f"{'would remove' if dry_run else 'removed'} leftover {where}", markup=False)
    for where in busy:
        console.print(f"left alone {where}: its process may still be running", markup=False)
    if note:
        console.print(f"note: {note}", markup=False)
    for name in plan.delete:
        console.print(f"{verb} {name}")
    for name, why in sorted(plan.keep.items()):
        console.print(f"kept {name}: {why}")
    for name in plan.incomplete:
        console.print(f"[yellow]left alone[/yellow] {name}: incomplete (no manifest); remove it by hand once checked")
    console.print(f"{len(plan.keep)} kept, {len(plan.delete)} {verb} (keep daily {counts['daily']}, "
                  f"weekly {counts['weekly']}, monthly {counts['monthly']})")
