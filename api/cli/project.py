"""CLI: `project` — catch the DuckDB read model up with the log, rebuild it, checksum it, follow the log."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, resolve_store_url

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("project")(project_command)


def project_command(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop the projections' tables and apply the log from 0")] = False,
    name: Annotated[
        Optional[list[str]], typer.Option("--name", help="Only this projection (repeatable); default all")
    ] = None,
    checksum: Annotated[bool, typer.Option("--checksum", help="Then print `table  checksum  rows` per table")] = False,
    readmodel: Annotated[Optional[Path], typer.Option("--readmodel", help="DuckDB file (default readmodel.path)")] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option("--batch-size", min=1, max=1_000_000, help="Events per DuckDB transaction (default readmodel.batch_size)"),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress", help="Print `start <position> <last id>`, then `progress <position> <last id>` per page")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Then keep following the log until SIGINT/SIGTERM")] = False,
    poll_ms: Annotated[int, typer.Option("--poll-ms", min=10, max=60_000, help="With --follow: poll interval when idle")] = 100,
    snapshot_every: Annotated[
        float, typer.Option("--snapshot-every", min=0, help="With --follow: publish a read-only snapshot at most every N s (0: never)")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Apply the log to the read model: per projection, events applied, position and seconds.

    Each page is one DuckDB transaction per projection that also moves its
    position, so an interrupted run resumes where it stopped, and a rebuild
    gives the same tables (compare with --checksum). DuckDB lets one process
    own the file: a second `project` on the same file is refused.
    """
    from api import bootstrap
    from projections.engine import runner

    settings = load_cli_settings(config)
    try:
        chosen = runner.by_name(name, runner.ALL_PROJECTIONS)
    except runner.UnknownProjection as exc:
        fail(str(exc))
    path = readmodel or settings.readmodel.path
    size = batch_size or settings.readmodel.batch_size
    report = runner.CatchUpReport()
    with opened_store(resolve_store_url(store, config)) as trading:
        last_id = trading.max_notification_id()
        try:
            con = bootstrap.readmodel(path=path)
        except runner.ReadModelLocked as exc:
            fail(str(exc))
        # With --follow, SIGINT/SIGTERM stop the process cleanly from here on (before "start" is printed), the first
        # catch-up included: it ends between pages, what was applied is kept. Before, a signal then killed the process.
        stop = _stop_on_signals() if follow else None
        try:
            on_page = None
            if progress:
                def on_page(position: int) -> None:
                    sys.stdout.write(f"progress {position} {last_id}\n")
                    sys.stdout.flush()

                start = 0 if rebuild else min(runner.ensure(con, chosen).values(), default=0)
                sys.stdout.write(f"start {start} {last_id}\n")
                sys.stdout.flush()
            began = time.perf_counter()
            try:
                if rebuild:
                    runner.rebuild(trading, con, runner.ALL_PROJECTIONS, size, names=[p.name for p in chosen],
                                   report=report, on_page=on_page, stop=stop)
                else:
                    runner.catch_up(trading, con, chosen, size, report=report, on_page=on_page, stop=stop)
            except runner.ProjectionFailed as exc:
                fail(str(exc), code=1)
            elapsed = time.perf_counter() - began
            digests = runner.table_digests(con, chosen) if checksum else {}
            _print(report, digests, elapsed, path, as_json, checksum)
            if stop is not None:
                _follow(trading, con, chosen, size, poll_ms, snapshot_every, path, on_page, stop)
        finally:
            con.close()


def _stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set (the follow loop and the catch-up before it end between pages)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _follow(trading, con, chosen, size: int, poll_ms: int, snapshot_every: float, path: Path, on_page,
            stop: threading.Event) -> None:
    """Follow the log until ``stop`` is set (SIGINT/SIGTERM), publishing snapshots for readers in other processes."""
    from projections.engine import runner

    publish = _snapshots(con, path, snapshot_every)
    publish(force=True)

    def applied(position: int) -> None:
        if on_page is not None:
            on_page(position)
        publish(dirty=True)

    try:
        runner.follow(trading, con, chosen, size, poll_ms=poll_ms, stop=stop, on_page=applied, on_idle=publish)
    except runner.ProjectionFailed as exc:
        fail(str(exc), code=1)
    publish(force=True)


def _snapshots(con, path: Path, every: float):
    """A publisher of the read model's snapshot (projections/reading/access.py) at most every ``every`` seconds."""
    from projections.reading.access import publish_snapshot
    state = {"dirty": False, "at": 0.0}

    def publish(dirty: bool = False, force: bool = False) -> None:
        state["dirty"] = state["dirty"] or dirty
        if every <= 0 or str(path) == ":memory:":
            return
        if force or (state["dirty"] and time.monotonic() - state["at"] >= every):
            publish_snapshot(con, path)
            state["dirty"], state["at"] = False, time.monotonic()

    return publish


def _print(report, digests: dict, elapsed: float, path: Path, as_json: bool, checksum: bool) -> None:
    if as_json:
        print(json.dumps({
            "readmodel": str(path),
            "events_read": report.events_read,
            "seconds": round(elapsed, 3),
            "projections": {
                n: {"applied": p.applied, "position": p.position, "seconds": round(p.seconds, 3)}
                for n, p in report.projections.items()
            },
            **({"checksums": {t: {"checksum": d, "rows": r} for t, (d, r) in digests.items()}} if checksum else {}),
        }), flush=True)
        return
    # With --checksum, stdout is only the checksum lines (diffable); the summary goes to stderr.
    out = Console(stderr=True, soft_wrap=True) if checksum else console
    for n, p in report.projections.items():
        out.print(f"{n:<14} applied {p.applied:>10}  position {p.position:>10}  {p.seconds:8.2f}s",
                  markup=False, highlight=False)
    out.print(f"{report.events_read} event(s) read in {elapsed:.2f}s -> {path}", markup=False, highlight=False)
    for table, (digest, rows) in digests.items():
        sys.stdout.write(f"{table}  {digest}  {rows}\n")
    sys.stdout.flush()
