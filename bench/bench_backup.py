"""Backup benchmarks: backup of a 1,000,000-event log, and restore + full projection rebuild of it.

The log is the projections benchmark's (bench_projections.build_log: real
backtests of the bundled Coinbase candles topped up with synthetic candles).
Timed:

- ``backup_events_per_s``: ``create_backup`` (a full daily backup, Parquet,
  fsynced and renamed) of the whole log, best of 3. Target >= 300,000 events/s.
- ``backup_verify_seconds``: ``verify_archive`` (checksums + every chain link).
- ``restore_rebuild_seconds``: ``restore_archive`` into a new SQLite store
  (checksums, every link recomputed from the rows as stored, each committed batch
  by a worker process while the next is written: infrastructure/backup/chain_check.py)
  plus a rebuild of every projection into a new DuckDB file in pages of ``readmodel.batch_size``, as
  `tradecore backup restore` rebuilds after a restore. Target <= 15 s. Its CPU figures count the chain-check worker process.

Set TRADECORE_BENCH_LOG=/path/events.db to reuse a log built earlier (it is
built there when missing).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from api.bootstrap import open_store, readmodel
from bench.bench_projections import build_log
from infrastructure.backup.operations import create_backup, restore_archive, verify_archive
from infrastructure.backup.storage import LocalArchives
from infrastructure.settings.loading import load_settings
from projections.engine import runner

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=timezone.utc)


def _cpu() -> float:
    """CPU seconds of this process and of the children it waited for (the restore's chain-check worker)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _log(tmp: Path, target_events: int) -> str:
    path = Path(os.environ.get("TRADECORE_BENCH_LOG") or tmp / "events.db")
    url = f"sqlite:///{path}"
    if not path.exists() or path.stat().st_size == 0:
        print("building the log ...", file=sys.stderr, flush=True)
        build_log(url, target_events)
    return url


def run(target_events: int = 1_000_000) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = _log(tmp, target_events)
        archives = LocalArchives(tmp / "backups")
        app = open_store(url)
        try:
            events = app.max_notification_id()
            print(f"backing up {events} events (best of 3) ...", file=sys.stderr, flush=True)
            runs = []
            for attempt in range(3):
                gc.collect()
                began, cpu = time.perf_counter(), time.process_time()
                created = create_backup(app, archives, kind="daily", now=NOW)
                runs.append((time.perf_counter() - began, time.process_time() - cpu))
                if attempt < 2:
                    archives.delete(created.name)
            backup_seconds, backup_cpu = min(runs)
        finally:
            app.close()
        figures["backup_log_events"] = created.manifest.event_count
        figures["backup_seconds"] = round(backup_seconds, 2)
        figures["backup_events_per_s"] = round(created.manifest.event_count / backup_seconds)
        figures["backup_cpu_seconds"] = round(backup_cpu, 2)  # all threads; wall > cpu means waiting for a core
        figures["backup_archive_mib"] = round(created.manifest.files[0].bytes / 2**20, 1)

        print("verifying ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        verify_archive(archives, created.name)
        figures["backup_verify_seconds"] = round(time.perf_counter() - began, 2)

        print("restoring and rebuilding ...", file=sys.stderr, flush=True)
        target = f"sqlite:///{tmp}/restored.db"
        pages = load_settings(env={}).readmodel.batch_size  # as `tradecore backup restore` rebuilds
        gc.collect()
        began, cpu = time.perf_counter(), _cpu()
        restored = restore_archive(archives, created.name, target, open_store=open_store, now=NOW)
        restore_seconds, restore_cpu = time.perf_counter() - began, _cpu() - cpu
        app = open_store(target)
        try:
            con = readmodel(path=tmp / "restored.duckdb")
            runner.rebuild(app, con, runner.ALL_PROJECTIONS, pages)
            con.close()
        finally:
            app.close()
        total, total_cpu = time.perf_counter() - began, _cpu() - cpu
        figures["restore_events"] = restored.events
        figures["restore_seconds"] = round(restore_seconds, 2)
        figures["restore_cpu_seconds"] = round(restore_cpu, 2)
        figures["restore_rebuild_seconds"] = round(total, 2)
        figures["restore_rebuild_batch_size"] = pages
        figures["restore_rebuild_cpu_seconds"] = round(total_cpu, 2)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
