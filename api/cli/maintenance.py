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
    from api.bootstrap import backup_shelf, open_store, process_log, store_location, upkeep_kit, wall_clock
    from application.errors import StorageError
    from application.operations.maintenance import weekly_check

    settings = load_cli_settings(config, {"eventstore.url": store} if store else None)
    now = wall_clock().now().astimezone(timezone.utc)
    location = store_location(settings.eventstore.url)
    missing = [str(p) for p in scan or () if not p.is_file()]
    if missing:
        fail(f"--scan: no such file: {', '.join(missing)}")
    try:
        archives = backup_shelf().open(settings.backup.dest)
    except StorageError as exc:
        fail(str(exc))
    try:
        found = weekly_check(upkeep_kit(), settings, reading=lambda: opened_store(settings.eventstore.url, read_only=True),
                             open_store=open_store, archives=archives, store_location=location,
                             log_file=process_log().analysed_log_file(settings), config_file=config, scan_files=scan or (),
                             now=now, fix=fix)
    except StorageError as exc:
        fail(str(exc))

    bad = [f for f in found if f.status == "finding"]
    if as_json:
        print(json.dumps({"ok": not bad, "findings": [f.as_dict() for f in found]}))
    else:
        for f in found:
            console.print(f"{MARKS[f.status]}  {f.check:<20} {f.detail}{f'  -> {f.action}' if f.action else ''}", markup=False)
        console.print(f"{len(bad)} finding(s)" if bad else "clean", markup=False)
    raise typer.Exit(1 if bad else 0)
