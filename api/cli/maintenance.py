"""CLI: `tradecore maintenance [--json] [--fix]`: the weekly security and upkeep check.

Exit 0: clean (fixed and skipped items allowed); 1: findings to act on; 2: bad input or unusable store.
`--fix` repairs only file modes and leftovers of killed backups and restores; every other finding
says what to do. SQLite ANALYZE and VACUUM (into a new file, verified, swapped in; skipped while
another process has the store open) and the DuckDB checkpoint are upkeep, done on every run.
"""

from __future__ import annotations

import json
from datetime import timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store

console = Console(soft_wrap=True, highlight=False)
MARKS = {"ok": "ok     ", "finding": "FINDING", "fixed": "fixed  ", "skipped": "skipped"}


def register(app: typer.Typer) -> None:
    app.command("maintenance")(maintenance_command)


def maintenance_command(
    fix: Annotated[bool, typer.Option("--fix", help="Repair file modes and remove leftovers of killed backups/restores")] = False,
    scan: Annotated[Optional[list[Path]], typer.Option("--scan", help="Also scan this export or file for secrets (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every finding as one JSON object")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """File modes, secrets in logs/exports/backups/payloads, SQLite and DuckDB upkeep, backup retention and leftovers,
    the newest anchor's age."""
    from api.bootstrap import open_store
    from infrastructure.backup.storage import LocalArchives, StorageError, open_archives
    from api.bootstrap import wall_clock
    from infrastructure.eventstore.store import parse_store_url
    from infrastructure.maintenance import files, secrets, upkeep
    from infrastructure.maintenance.findings import skipped

    settings = load_cli_settings(config, {"eventstore.url": store} if store else None)
    now = wall_clock().now().astimezone(timezone.utc)
    location = parse_store_url(settings.eventstore.url)
    try:
        archives = open_archives(settings.backup.dest)
    except StorageError as exc:
        fail(str(exc))
    store_file = Path(location.sqlite_path) if location.backend == "sqlite" and not location.is_memory else None
    log_file = Path(settings.system.log_file) if settings.system.log_file not in (None, "-") else Path("var/logs/tradecore.log")
    backup_root = archives.root if isinstance(archives, LocalArchives) else None
    found = files.mode_findings(files.guarded_paths(
        store_file=store_file, readmodel=Path(settings.readmodel.path), backup_root=backup_root,
        log_file=log_file, config_file=config), fix)

    configured = secrets.configured_secrets(settings)
    with opened_store(settings.eventstore.url, read_only=True) as trading:
        sources = [("event payloads", secrets.payloads(trading))]
        logs = [log_file, *sorted(log_file.parent.glob(log_file.name + ".*"))] if log_file.exists() else []
        sources += [("logs", (chunk for path in logs for chunk in secrets.file_chunks(path)))]
        if backup_root is not None:
            events_files = sorted(p for p in backup_root.glob("*/events.*") if not p.parent.name.startswith("."))
            sources += [("backups", (chunk for path in events_files for chunk in _backup_chunks(path)))]
        if scan:
            missing = [str(p) for p in scan if not p.is_file()]
            if missing:
                fail(f"--scan: no such file: {', '.join(missing)}")
            sources += [("exports", (chunk for path in scan for chunk in secrets.file_chunks(path)))]
        found += secrets.scan(sources, configured)
    if store_file is not None:
        found += upkeep.sqlite_upkeep(store_file, open_store, now.strftime("%Y%m%dT%H%M%SZ"))
    elif location.backend == "postgresql":
        found.append(skipped("store.upkeep", f"{location.redacted()}: PostgreSQL keeps itself (autovacuum); "
                                             "its backups and replication are the database's"))
    found.append(upkeep.duckdb_checkpoint(Path(settings.readmodel.path)))
    b = settings.backup
    try:
        found += upkeep.backup_findings(archives, {"daily": b.keep_daily, "weekly": b.keep_weekly, "monthly": b.keep_monthly},
                                        location, now, fix)
    except StorageError as exc:
        fail(str(exc))
    key = settings.audit.anchor_key
    found.append(upkeep.anchor_age(b.dest, key.get_secret_value().encode() if key else None, now))

    bad = [f for f in found if f.status == "finding"]
    if as_json:
        print(json.dumps({"ok": not bad, "findings": [f.as_dict() for f in found]}))
    else:
        for f in found:
            console.print(f"{MARKS[f.status]}  {f.check:<20} {f.detail}{f'  -> {f.action}' if f.action else ''}", markup=False)
        console.print(f"{len(bad)} finding(s)" if bad else "clean", markup=False)
    raise typer.Exit(1 if bad else 0)


def _backup_chunks(path: Path):
    from infrastructure.maintenance.secrets import file_chunks

    yield from file_chunks(path) if path.suffix == ".parquet" or path.name.endswith((".jsonl", ".jsonl.gz")) else ()
