"""How readers get a read model: fresh, while another process owns it, or as it stood then.

DuckDB lets one process own a file; nobody else may even open it read-only.
So a short-lived reader (``tradecore report``/``query``):

1. owns the file itself when it is free: catches it up with the log, then reads;
2. when a long-running owner (``tradecore project --follow``, later ``serve``
   and ``run``) holds it, reads the snapshot that owner publishes next to it
   every few seconds (``readmodel.snapshot.duckdb``, replaced atomically);
3. with ``--as-of``, builds a throwaway in-memory read model from the log up to
   that notification id, never touching the live one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from projections.engine import runner


class NoReadModel(RuntimeError):
    """The read model is owned by another process and no snapshot has been published yet."""


@dataclass
class ReadModel:
    """An open read-model connection and where its data comes from."""

    con: duckdb.DuckDBPyConnection
    source: str
    position: int

    def close(self) -> None:
        self.con.close()


class LogPrefix:
    """The log up to a notification id: what the store looked like then."""

    def __init__(self, store: Any, until: int):
        self._store = store
        self.until = until
        self.recorder = self

    def select_log_rows(self, after: int, limit: int, topics: Any = ()) -> list:
        if after >= self.until:
            return []
        rows = self._store.recorder.select_log_rows(after, limit, topics)
        return [row for row in rows if row[0] <= self.until]

    def max_notification_id(self) -> int:
        return min(self._store.max_notification_id(), self.until)


def snapshot_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".snapshot" + path.suffix)


def publish_snapshot(con: duckdb.DuckDBPyConnection, path: str | Path) -> Path:
    """Copy the owner's read model to its snapshot file (temporary name, then an atomic rename)."""
    target = snapshot_path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.unlink(missing_ok=True)
    database = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH '{temporary}' AS tradecore_snapshot")
    try:
        con.execute(f'COPY FROM DATABASE "{database}" TO tradecore_snapshot')
    finally:
        con.execute("DETACH tradecore_snapshot")
    os.replace(temporary, target)
    return target


def notification_at(store: Any, moment: datetime, page: int = 10_000) -> int:
    """The last notification id of an event that occurred at or before ``moment`` (0 if none)."""
    best, after = 0, 0
    while rows := store.recorder.select_log_rows(after, page, ()):
        for nid, _topic, state in rows:
            occurred = datetime.fromisoformat(orjson.loads(state)["occurred_at"])
            if occurred <= moment:
                best = nid
        after = rows[-1][0]
    return best


def open_for_reading(
    store: Any, path: str | Path, batch_size: int, as_of: int | None = None, sandboxed: bool = False
) -> ReadModel:
    """A read-model connection for a report or query (see the module docstring).

    ``sandboxed`` (for analyst SQL): the file or snapshot is opened read-only and
    every connection gets ``seal_for_analysts``, so a query can neither write nor
    reach anything outside the read model.
    """
    if as_of is not None:
        con = runner.open_readmodel(":memory:")
        prefix = LogPrefix(store, as_of)
        runner.catch_up(prefix, con, runner.ALL_PROJECTIONS, batch_size)
        if sandboxed:
            seal_for_analysts(con)
        return ReadModel(con, f"the log as of notification {prefix.max_notification_id()} (built in memory)", prefix.max_notification_id())
    try:
        con = runner.open_readmodel(path)
        runner.catch_up(store, con, runner.ALL_PROJECTIONS, batch_size)
        if sandboxed:  # caught up: reopen it read-only for the analyst's statement
            con.close()
            con = runner.open_readmodel(path, read_only=True)
    except runner.ReadModelLocked as locked:
        snapshot = snapshot_path(path)
        if not snapshot.exists():
            raise NoReadModel(f"{locked}; and it has published no snapshot at {snapshot} yet") from None
        con = duckdb.connect(str(snapshot), read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        if sandboxed:
            seal_for_analysts(con)
        position = _position(con)
        return ReadModel(con, f"snapshot {snapshot} (published by the process that owns {path})", position)
    if sandboxed:
        seal_for_analysts(con)
    return ReadModel(con, f"{path} (caught up with the log)", _position(con))


def seal_for_analysts(con: duckdb.DuckDBPyConnection) -> None:
    """No files, no network, no extensions, and no way to undo that on this connection.

    DuckDB's ``enable_external_access=false`` stops COPY, ATTACH, INSTALL/LOAD and the
    file table functions (read_csv, glob, read_text, ...); ``lock_configuration``
    then refuses every SET/RESET, so a statement cannot turn it back on.
    """
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _position(con: duckdb.DuckDBPyConnection) -> int:
    try:
        row = con.execute(f"SELECT min(last_notification_id) FROM {runner.TRACKING}").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(row[0] or 0)
