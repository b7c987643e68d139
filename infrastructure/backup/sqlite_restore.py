"""A restore into SQLite: the new log built in a hidden file beside the target, checked there, renamed over it.

The application creates the hidden file's tables (exactly the ones its recorder expects); the rows go in
batch by batch in WAL mode without syncs; every link is recomputed from the rows as stored (chain_check.py:
each committed batch by a worker process while the next is written); then the file is checkpointed,
switched out of WAL, fsynced and renamed over the target (``os.replace``), the old file first hard-linked
aside. A failure or a kill leaves the target as it was (loading.py: the whole procedure, both backends).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from application.errors import RestoreRefused
from infrastructure.backup import chain_check
from infrastructure.backup.archive import ArchiveProblem, fsync_dir, temporary_name
from infrastructure.backup.chain_check import Follower, RangeCheck, StoredChain, check_stored
from infrastructure.eventstore.store import StoreLocation
from infrastructure.backup.walk import RowOrder

LINK_SIZE = 33  # a version 2 chain link: the version byte and a sha256 digest (eventstore/chain.py)
STREAM_KEY = ", PRIMARY KEY (originator_id, originator_version))"  # how the events table's SQL ends


class StreamKey:
    """The events table's (stream, version) key, left out while the rows go in and built once at the end.

    SQLite builds an index from sorted keys in one pass, far cheaper than keeping it for each of a million
    inserts. The key is the table's PRIMARY KEY, an index SQLite made with the table (``sqlite_autoindex_...``):
    the table is made again without it, and at the end a unique index on the same columns, built from the rows,
    takes the key's name, and the table its SQL as the application wrote it (``PRAGMA writable_schema``), so the
    file's schema is the application's, entry for entry. A table not made as expected keeps its key in place."""

    def __init__(self, con: sqlite3.Connection, events: str):
        self.events = events
        self.name = f"sqlite_autoindex_{events}_1"
        self.table_sql: str | None = None
        rows = con.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ?", (events,)).fetchall()
        table = [sql for kind, name, sql in rows if kind == "table" and name == events]
        if len(table) != 1 or sorted(name for kind, name, _ in rows if kind == "index") != [self.name] \
                or not table[0].endswith(STREAM_KEY):
            return
        con.execute("BEGIN")
        con.execute(f"DROP TABLE {events}")
        con.execute(table[0][: -len(STREAM_KEY)] + ")")
        con.execute("COMMIT")
        self.table_sql = table[0]

    def build(self, con: sqlite3.Connection) -> None:
        """Build the key from the rows (no transaction open); two events of one stream with one version are refused."""
        if self.table_sql is None:
            return
        building = f"{self.events}_stream_key_building"
        try:
            con.execute(f"CREATE UNIQUE INDEX {building} ON {self.events}(originator_id, originator_version)")
        except sqlite3.IntegrityError:
            oid, version, first, second = con.execute(
                f"SELECT originator_id, originator_version, min(rowid), max(rowid) FROM {self.events} "
                "GROUP BY originator_id, originator_version HAVING count(*) > 1 ORDER BY 3 LIMIT 1").fetchone()
            raise ArchiveProblem(f"notifications {first} and {second} are both version {version} of {oid} "
                                 "(a stream's version is recorded once)") from None
        con.execute("PRAGMA writable_schema=ON")
        try:
            con.execute("BEGIN")
            con.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (self.table_sql, self.events))
            con.execute("UPDATE sqlite_master SET name = ?, sql = NULL WHERE type = 'index' AND name = ?", (self.name, building))
            con.execute("COMMIT")
        finally:
            con.execute("PRAGMA writable_schema=RESET")  # off, and the schema read again
        if con.execute(f"PRAGMA index_list({self.events})").fetchall() != [(0, self.name, 1, "pk", 0)]:
            raise RuntimeError(f"the key of {self.events} was not rebuilt as its primary key")


def _checkpoint(path: Path) -> None:
    """Copy the committed pages of the WAL into the file (beside the writer: SQLite works without the GIL)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        con.close()


def _sqlite_event_count(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _event_count(con)
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"{path} exists and is not a readable SQLite store ({exc}); move it away first") from None
    finally:
        con.close()


class SQLiteLoader:
    """Fills a hidden SQLite file, verifies it, and renames it over the target.

    ``checks_links``: the links are recomputed only from the rows as stored (the archive's rows are checked for
    order and completeness while they are written: ``RowOrder``), so the chain is hashed once per restore."""

    checks_links = True

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
        self._open_store = open_store
        self._stamp = stamp
        self._replaced = False
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(self.target)
        app = open_store(f"sqlite:///{self.tmp}")  # the application creates the tables its recorder expects
        self.events, self.chain = app.recorder.events_table_name, app.recorder.chain_table_name
        app.close()
        self._insert_links = (  # (count, first notification id, the links joined): link k at notification id first + k
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) "
            f"INSERT INTO {self.chain} (notification_id, link) SELECT ? + i, substr(?, i * {LINK_SIZE} + 1, {LINK_SIZE}) FROM k"
        )
        self.con = sqlite3.connect(self.tmp, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")  # the checker reads committed batches while the next is written
        self.con.execute("PRAGMA synchronous=OFF")  # the whole file is discarded on failure, fsynced once checked
        self.con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the stream key is sorted in memory
        self.con.execute("PRAGMA wal_autocheckpoint=0")  # a thread copies each committed batch into the file
        self._copier = ThreadPoolExecutor(1, thread_name_prefix="tradecore-restore-checkpoint")
        self._copying: Future | None = None
        self.key = StreamKey(self.con, self.events)
        self.con.execute("BEGIN")
        self.count = 0
        self._committed = 0  # rows committed (and handed to the checker)
        self._follower: Follower | None = None

    def append(self, columns: list[list]) -> None:
        """Insert rows given as the six column lists of rows.SCHEMA."""
        ids, oids, versions, topics, states, links = columns
        self.con.executemany(
            f"INSERT INTO {self.events}(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
            zip(ids, oids, versions, topics, states),
        )
        if ids and ids[-1] - ids[0] == len(ids) - 1 and set(map(len, links)) == {LINK_SIZE}:
            # consecutive ids (they ascend: RowOrder) and version 2 links: the batch's links as one blob, cut in SQLite
            self.con.execute(self._insert_links, (len(ids), ids[0], b"".join(links)))
        else:
            self.con.executemany(f"INSERT INTO {self.chain}(notification_id, link) VALUES (?,?)", zip(ids, links))
        self.count += len(ids)
        if self.count - self._committed >= chain_check.FOLLOW_FROM:
            self.con.execute("COMMIT")
            self.con.execute("BEGIN")
            self._committed = self.count
            if self._copying is None or self._copying.done():
                self._copying = self._copier.submit(_checkpoint, self.tmp)
            if self._follower is None:
                self._follower = Follower(self.tmp, self.events, self.chain)
            if not self._follower.committed(ids[-1]):  # it stopped (it found a problem): no use writing more
                follower, self._follower = self._follower, None
                self._refuse_if_bad(follower.finish())

    def _refuse_if_bad(self, stored: StoredChain | RangeCheck) -> StoredChain:
        if isinstance(stored, RangeCheck):
            bad = "" if stored.bad_notification_id is None else f"notification {stored.bad_notification_id}: "
            raise ArchiveProblem(f"the restored log does not verify in the new file {self.tmp}: {bad}{stored.problem}")
        return stored

    def seal_and_check(self, walk: RowOrder) -> None:
        """Commit into the hidden file, then verify it as stored (nothing at the target changes): every link
        recomputed from its rows, count and last id equal to the archive's; ``walk.head`` is then the head."""
        self.con.execute("COMMIT")
        if self._follower is not None:
            self._follower.end()  # it checks the last batch while the stream key is built
            self.key.build(self.con)
            follower, self._follower = self._follower, None
            stored = self._refuse_if_bad(follower.finish())
        else:
            self.key.build(self.con)
            stored = self._refuse_if_bad(check_stored(self.tmp, self.events, self.chain))
        if (stored.count, stored.last_id) != (walk.count, walk.last_id):
            raise ArchiveProblem(
                f"the restored log in the new file {self.tmp} does not match the archive: {stored.count} events, "
                f"last id {stored.last_id} (expected {walk.count} events, last id {walk.last_id})"
            )
        walk.head = stored.head
        # everything into the file, and no -wal beside it: the rename moves one file only
        self._copier.shutdown()
        if self._copying is not None:
            self._copying.result()
        self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = self.con.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        self.con.close()
        if mode.lower() != "delete":
            raise RuntimeError(f"{self.tmp} stayed in {mode} mode (another connection has it open)")
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())

    def stored_link(self, notification_id: int) -> bytes | None:
        """The link the sealed file holds for ``notification_id`` (after ``seal_and_check``: a verified one)."""
        con = sqlite3.connect(f"file:{self.tmp}?mode=ro", uri=True)
        try:
            row = con.execute(f"SELECT link FROM {self.chain} WHERE notification_id = ?", (notification_id,)).fetchone()
        finally:
            con.close()
        return None if row is None else bytes(row[0])

    def replace(self) -> None:
        """Put the verified file at the target in one rename; the old file stays under a moved-aside name."""
        self.moved_to = replace_sqlite_file(self.tmp, self.target, self._stamp, keep_old=True)
        self._replaced = True

    def abort(self) -> None:
        try:
            if self._follower is not None:
                self._follower.stop()
            self._copier.shutdown()
            self.con.close()
        finally:
            if not self._replaced:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self.tmp}{suffix}").unlink(missing_ok=True)


def replace_sqlite_file(new: Path, target: Path, stamp: str, *, keep_old: bool,
                        unchanged: Callable[[sqlite3.Connection], bool] | None = None) -> str | None:
    """Rename ``new`` over ``target`` in one step, while no one else has the target open.

    The target's WAL is checkpointed into it and its journal switched off WAL, so no stale
    -wal can meet the new file; it is held under an exclusive lock until the rename. With
    ``keep_old`` (and events in it) the old file is first hard-linked to ``<target>.moved-<stamp>``,
    whose name is returned. A target in use by another process raises RestoreRefused, and so does
    one for which ``unchanged`` (asked under the lock) says it changed since ``new`` was made.
    """
    holder = None
    moved = None
    if target.exists():
        holder = sqlite3.connect(target, isolation_level=None, timeout=10)
        try:
            holder.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything committed goes into the main file
            mode = holder.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            if mode.lower() != "delete" or Path(f"{target}-wal").exists():
                raise RestoreRefused(f"{target} is in use by another process; stop it and try again")
            holder.execute("BEGIN EXCLUSIVE")  # no one reads or writes the old file until it is replaced
        except sqlite3.OperationalError as exc:
            holder.close()
            raise RestoreRefused(f"{target} is in use by another process ({exc}); stop it and try again") from None
        except RestoreRefused:
            holder.close()
            raise
        if unchanged is not None and not unchanged(holder):
            holder.close()
            raise RestoreRefused(f"{target} changed while the new file was made; nothing was replaced")
        if keep_old and _event_count(holder):
            moved = _link_aside(target, stamp)
    try:
        os.replace(new, target)
        fsync_dir(target.parent)
    finally:
        if holder is not None:
            holder.close()
    return moved


def _event_count(con: sqlite3.Connection) -> int:
    """How many events a store file holds (the larger of its events' and its links' counts: either table alone counts)."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return max((con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("stored_events", "stored_events_chain") if t in tables), default=0)


def _link_aside(target: Path, stamp: str) -> str:
    """A second name for the old store file (a hard link: the target keeps it until the rename)."""
    moved = target.with_name(f"{target.name}.moved-{stamp}")
    n = 1
    while moved.exists():
        n += 1
        moved = target.with_name(f"{target.name}.moved-{stamp}-{n}")
    os.link(target, moved)
    fsync_dir(target.parent)
    return str(moved)
