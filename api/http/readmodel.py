"""The read node's access to its DuckDB read model: a cursor per thread and a cache per position.

The projector (another thread of the same process) owns the connection; the
API reads through cursors of the same database instance, each query its own
transaction, so a read sees every page the projector has committed. The read
model changes only when the projector applies a page, so a computed answer is
kept until the position moves (``moved``) and hot endpoints cost a dict lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

from projections.engine.runner import TRACKING

T = TypeVar("T")
_CACHE_ENTRIES = 1024


class ReadModelNotReady(RuntimeError):
    """The read model has no tables yet (the projector has not created them)."""


class ReadModelAccess:
    """Queries on the shared read model, and answers cached per projector position."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._root = con.cursor()  # cursors are made from this one, never from the projector's connection
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cache: dict[Any, tuple[int, Any]] = {}
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self.position = self.read_position()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (created on first use, in UTC)."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._root.cursor()
                self._cursors.append(cursor)
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
        return cursor

    def rows(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        """Rows as dicts; a missing table means the projector has not created it yet."""
        try:
            result = self.cursor().execute(sql, list(params))
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
        except duckdb.CatalogException as exc:
            raise ReadModelNotReady(f"the read model is not ready yet: {exc}") from None

    def one(self, sql: str, params: list | tuple = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: list | tuple = ()) -> Any:
        try:
            row = self.cursor().execute(sql, list(params)).fetchall()
        except duckdb.CatalogException as exc:
            raise ReadModelNotReady(f"the read model is not ready yet: {exc}") from None
        return row[0][0] if row else None

    def read_position(self) -> int:
        """The lowest position of all projections (0 before the first page)."""
        try:
            value = self.cursor().execute(f"SELECT min(last_notification_id) FROM {TRACKING}").fetchall()[0][0]
        except duckdb.CatalogException:
            return 0
        return int(value or 0)

    def projection_positions(self) -> dict[str, int]:
        try:
            return dict(self.cursor().execute(f"SELECT name, last_notification_id FROM {TRACKING}").fetchall())
        except duckdb.CatalogException:
            return {}

    def moved(self, position: int | None = None, ready: dict[Any, Any] | None = None) -> None:
        """The projector committed a page: cached answers of older positions are stale; ``ready`` holds answers
        (key -> value) already computed at the new position."""
        position = self.read_position() if position is None else position
        if position != self.position:  # positions only grow: older answers can never be asked for again
            self._cache.clear()
        for key, value in (ready or {}).items():
            self._cache[key] = (position, value)
        self.position = position

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``'s value, computed at most once per read-model position."""
        at = self.position
        hit = self._cache.get(key)
        if hit is not None and hit[0] == at:
            return hit[1]
        value = compute()
        if len(self._cache) >= _CACHE_ENTRIES:  # many distinct queries at one position: start again
            self._cache.clear()
        self._cache[key] = (at, value)
        return value

    def keep(self, at: int, values: dict[Any, Any]) -> None:
        """Keep ``values`` (key -> value) as computed at position ``at`` (dropped if the read model has moved)."""
        if at != self.position:
            return
        if len(self._cache) + len(values) > _CACHE_ENTRIES:
            self._cache.clear()
        for key, value in values.items():
            self._cache[key] = (at, value)

    def peek(self, key: Any) -> Any:
        """The cached value for ``key`` at the current position, or None (no computing)."""
        hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] == self.position else None

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors:
                try:
                    cursor.close()
                except Exception:  # noqa: BLE001 - closing at shutdown
                    pass
            self._cursors.clear()
            self._root.close()
