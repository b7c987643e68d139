"""The read-model file and where each projection stands in the log.

``projection_tracking`` holds one row per projection: the last notification id it applied. A
projection's rows and its row here move in the same DuckDB transaction (see runner.py), so a crash
never applies an event twice or skips one. A projection without a row starts from 0 with its tables
dropped and created again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from projections.engine.base import Projection

__all__ = ["TRACKING", "ReadModelLocked", "ensure", "move", "now", "open_readmodel", "positions", "restart"]

TRACKING = "projection_tracking"
_TRACKING_DDL = f"""CREATE TABLE IF NOT EXISTS {TRACKING} (
    name VARCHAR PRIMARY KEY,
    last_notification_id BIGINT NOT NULL,
    updated_at TIMESTAMPTZ      -- wall clock of the last move; never checksummed
)"""


class ReadModelLocked(RuntimeError):
    """The DuckDB file is open in another process (DuckDB allows one writer per file)."""


def open_readmodel(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating it and its folder) the read-model file, in UTC.

    A file held by another process raises ReadModelLocked naming the file and that process.
    """
    target = Path(path)
    if str(path) != ":memory:" and not read_only:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        pid = re.search(r"PID (\d+)", str(exc))
        raise ReadModelLocked(
            f"the read model {target} is in use by another tradecore process{f' (PID {pid.group(1)})' if pid else ''}: "
            "DuckDB lets one process own the file; stop that process (or read through its API) and try again"
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:  # fewer, larger checkpoints: each rewrites the tables' last, partly filled row groups
        con.execute("SET checkpoint_threshold = '256MB'")
    return con


def now() -> datetime:
    """The wall clock written beside a position (never checksummed)."""
    return datetime.now(timezone.utc)


def positions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Each tracked projection's last applied notification id."""
    con.execute(_TRACKING_DDL)
    return dict(con.execute(f"SELECT name, last_notification_id FROM {TRACKING}").fetchall())


def ensure(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]) -> dict[str, int]:
    """Create missing tables and tracking rows; returns the positions.

    A projection without a tracking row starts from 0 with its tables dropped
    and created again, so stale rows never survive.
    """
    tracked = positions(con)
    changed = shapes_changed(con, [p for p in projections if p.name in tracked])
    for projection in projections:
        if projection.name in tracked and projection.name not in changed:
            projection.create(con)
        else:  # new, or its tables were made by another version of it: rebuilt from the log
            restart(con, projection)
            tracked[projection.name] = 0
    return {p.name: tracked[p.name] for p in projections}


def shape_changed(con: duckdb.DuckDBPyConnection, projection: Projection) -> bool:
    """Whether a table of ``projection`` in the file lacks a column (or has another type) that this version
    of the projection creates: such a read model is rebuilt rather than written with the wrong shape."""
    return projection.name in shapes_changed(con, [projection])


def shapes_changed(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]) -> set[str]:
    """The names of ``projections`` whose shape changed (``shape_changed``). What each creates is seen in one
    in-memory database, each projection's tables in a schema of their own (a database opened per projection
    cost ~30 ms each: ~0.3 s of every catch-up's start with the ten projections)."""
    if not projections:
        return set()
    have = _columns(con)
    changed: set[str] = set()
    fresh = duckdb.connect(":memory:")
    try:
        for i, projection in enumerate(projections):
            fresh.execute(f"CREATE SCHEMA shape_{i}")
            fresh.execute(f"USE shape_{i}")
            projection.create(fresh)
            wanted = _columns(fresh, f"shape_{i}")
            if any(table in have and not columns <= have[table] for table, columns in wanted.items()):
                changed.add(projection.name)
    finally:
        fresh.close()
    return changed


def _columns(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, set[tuple[str, str]]]:
    shape: dict[str, set[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ?", [schema]).fetchall():
        shape.setdefault(table, set()).add((column, kind))
    return shape


def restart(con: duckdb.DuckDBPyConnection, projection: Projection) -> None:
    """Drop and create its tables and set its position to 0, in one transaction."""
    con.begin()
    try:
        projection.drop(con)
        projection.create(con)
        con.execute(f"DELETE FROM {TRACKING} WHERE name = ?", [projection.name])
        con.execute(f"INSERT INTO {TRACKING} VALUES (?, 0, ?)", [projection.name, now()])
        con.commit()
    except BaseException:
        con.rollback()
        raise


def move(con: duckdb.DuckDBPyConnection, names: Sequence[str], last: int) -> None:
    """Set the positions of ``names`` to ``last`` (inside the caller's transaction)."""
    con.execute(f"UPDATE {TRACKING} SET last_notification_id = ?, updated_at = ? WHERE list_contains(?, name)",
                [last, now(), list(names)])
