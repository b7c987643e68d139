"""Writing archived rows into an empty store, keeping their notification ids.

SQLite: the store is built in a hidden file next to the target (created by the
application itself, so its tables are exactly the ones it expects), filled in
one transaction without a journal, fsynced and renamed into place: a crash
leaves no half-restored store under the target name.

PostgreSQL: the tables are created by the application, then filled with COPY
in one transaction that holds the events table lock; the id sequence is moved
past the last restored id before the commit.

A target that holds events is refused; with ``force`` it is moved aside (the
SQLite file renamed, the PostgreSQL schema renamed), never deleted.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infrastructure.backup.archive import fsync_dir, temporary_name
from infrastructure.eventstore.store import StoreLocation, _pg_connect, parse_store_url


class RestoreRefused(Exception):
    """The target store cannot be restored into; the message says why and what to do."""


def _sqlite_event_count(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        count = 0
        for table in ("stored_events", "stored_events_chain"):
            if table in tables:
                count = max(count, con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return count
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"{path} exists and is not a readable SQLite store ({exc}); move it away first") from None
    finally:
        con.close()


class SQLiteLoader:
    """Fills a new SQLite store file and renames it over the target."""

    def __init__(self, location: StoreLocation, *, force: bool, stamp: str, open_store: Callable[[str], Any]):
        if location.is_memory:
            raise RestoreRefused("cannot restore into an in-memory store: name a file, sqlite:///PATH")
        self.target = Path(location.sqlite_path)
        self.moved_to: str | None = None
        existing = _sqlite_event_count(self.target)
        if existing and not force:
            raise RestoreRefused(
                f"{self.target} already holds {existing} events: restore only into an empty store, "
                "or pass --force to move it aside (it is renamed, never deleted)"
            )
        self._existing = self.target.exists()
        self._force = force
        self._stamp = stamp
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(self.target)
        app = open_store(f"sqlite:///{self.tmp}")  # the application creates the tables its recorder expects
        self.events, self.chain = app.recorder.events_table_name, app.recorder.chain_table_name
        app.close()
        self.con = sqlite3.connect(self.tmp, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=OFF")  # the whole file is discarded on failure
        self.con.execute("PRAGMA synchronous=OFF")
        self.con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the stream index stays in memory while it grows
        self.con.execute("BEGIN")
        self.count = 0

    def append(self, columns: list[list]) -> None:
        """Insert rows given as the six column lists of rows.SCHEMA."""
        ids, oids, versions, topics, states, links = columns
        self.con.executemany(
            f"INSERT INTO {self.events}(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
            zip(ids, oids, versions, topics, states),
        )
        self.con.executemany(f"INSERT INTO {self.chain}(notification_id, link) VALUES (?,?)", zip(ids, links))
        self.count += len(ids)

    def commit(self) -> None:
        self.con.execute("COMMIT")
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        if self._existing:
            self.moved_to = _move_sqlite_aside(self.target, self._stamp)
        os.replace(self.tmp, self.target)
        fsync_dir(self.target.parent)

    def abort(self) -> None:
        try:
            self.con.close()
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.tmp}{suffix}").unlink(missing_ok=True)


def _move_sqlite_aside(target: Path, stamp: str) -> str:
    """Rename the store file and its WAL/SHM companions together (a stale WAL must never meet a new file)."""
    moved = target.with_name(f"{target.name}.moved-{stamp}")
    n = 1
    while moved.exists():
        n += 1
        moved = target.with_name(f"{target.name}.moved-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):
        side = Path(f"{target}{suffix}")
        if side.exists():
            os.rename(side, f"{moved}{suffix}")
    os.rename(target, moved)
    return str(moved)


class PostgresLoader:
    """Fills the store's tables with COPY in one transaction."""

    def __init__(self, location: StoreLocation, *, force: bool, stamp: str, open_store: Callable[[str], Any]):
        self.location = location
        self.schema = location.schema or "public"
        self.moved_to: str | None = None
        app = open_store(location.url)
        try:
            existing = app.max_notification_id()
            events, chain = app.recorder.events_table_name, app.recorder.chain_table_name
        finally:
            app.close()
        self.events, self.chain = events, chain
        conn = _pg_connect(location)
        try:
            links = conn.execute(f'SELECT count(*) FROM "{self.schema}"."{chain}"').fetchone()[0]
        finally:
            conn.close()
        if existing or links:
            if not force:
                raise RestoreRefused(
                    f"{location.redacted()} already holds events (last id {existing}): restore only into an empty store, "
                    "or pass --force to move it aside (its schema is renamed, never dropped)"
                )
            self.moved_to = self._move_aside(stamp)
            open_store(location.url).close()
        self.conn = _pg_connect(location)
        self.conn.autocommit = False
        self.conn.execute(f'LOCK TABLE "{self.schema}"."{events}" IN EXCLUSIVE MODE')
        self.count = 0
        self.last_id = 0

    def _move_aside(self, stamp: str) -> str:
        conn = _pg_connect(self.location)
        try:
            with conn.transaction():
                if self.schema != "public":
                    moved = f"{self.schema}_moved_{stamp}".lower()[:63]
                    conn.execute(f'ALTER SCHEMA "{self.schema}" RENAME TO "{moved}"')
                else:
                    moved = f"tradecore_moved_{stamp}".lower()[:63]
                    conn.execute(f'CREATE SCHEMA "{moved}"')
                    for table in (self.events, self.chain):
                        conn.execute(f'ALTER TABLE public."{table}" SET SCHEMA "{moved}"')
        finally:
            conn.close()
        return f"schema {moved}"

    def append(self, columns: list[list]) -> None:
        """Copy rows given as the six column lists of rows.SCHEMA."""
        ids, oids, versions, topics, states, links = columns
        with self.conn.cursor() as curs:
            with curs.copy(
                f'COPY "{self.schema}"."{self.events}" (notification_id, originator_id, originator_version, topic, state) FROM STDIN'
            ) as copy:
                for row in zip(ids, oids, versions, topics, states):
                    copy.write_row(row)
            with curs.copy(f'COPY "{self.schema}"."{self.chain}" (notification_id, link) FROM STDIN') as copy:
                for row in zip(ids, links):
                    copy.write_row(row)
        self.count += len(ids)
        if ids:
            self.last_id = ids[-1]

    def commit(self) -> None:
        if self.last_id:
            self.conn.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                (f'"{self.schema}"."{self.events}"', self.last_id),
            )
        self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def open_loader(url: str, *, force: bool, stamp: str, open_store: Callable[[str], Any]) -> Any:
    """A loader for the store at ``url`` (refusing a non-empty one unless ``force``).

    ``open_store`` (api.bootstrap's) opens a store by URL: the loader lets the
    application create its own tables before filling them.
    """
    location = parse_store_url(url)
    if location.backend == "sqlite":
        return SQLiteLoader(location, force=force, stamp=stamp, open_store=open_store)
    return PostgresLoader(location, force=force, stamp=stamp, open_store=open_store)
