"""Writing archived rows into a store, keeping their notification ids, replacing the target only once verified.

Every restore builds the new log beside the target, verifies it there (every
chain link recomputed from the rows as stored, the count and head compared with
the archive's), and only then puts it in the target's place in one atomic step.
A failure or a kill at any moment leaves either the old log or the new one at
the target, never an empty or half-restored one.

SQLite: the store is built in a hidden file next to the target (created by the
application itself, so its tables are exactly the ones it expects), filled in
WAL mode without syncs, batch by batch, verified (chain_check.py: every link
recomputed once, from the rows as stored, each committed batch by a worker
process while the next is written), checkpointed, switched out of WAL, fsynced
and renamed over the target (``os.replace``). With ``force`` the old file is first hard-linked to
``<target>.moved-<time>`` (after its WAL is checkpointed into it), so it is
never deleted and is still at the target until the rename.

PostgreSQL: the tables are created by the application in a staging schema
(``tc_restore_<time>_<random>``), filled with COPY in one transaction, the id
sequence moved past the last id, verified; then one transaction moves the
target's tables to ``<schema>_moved_<time>`` (with ``force``; an empty target's
tables are dropped) and the staging tables into the target schema. A failure
drops the staging schema; a kill leaves it behind, named as such.

A target that holds events is refused unless ``force``. Stop every process
that writes to the target before a forced restore.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from application.errors import RestoreRefused  # defined there (api/ maps it); this path stays valid
from infrastructure.backup.archive import ArchiveProblem, fsync_dir, temporary_name
from infrastructure.backup import chain_check
from infrastructure.backup.chain_check import Follower, RangeCheck, StoredChain, check_stored
from infrastructure.backup.walk import ChainWalk, RowOrder
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import PG_NAME_LIMIT, StoreLocation, _pg_connect, parse_store_url

LINK_SIZE = 33  # a version 2 chain link: the version byte and a sha256 digest (eventstore/chain.py)


def _check_built(open_store: Callable[[str], Any], url: str, walk: ChainWalk, where: str) -> None:
    """The built store holds exactly the archive's rows: every link recomputed, count and head equal."""
    app = open_store(url)
    try:
        report = verify_chain(app.recorder)
    finally:
        app.close()
    if not report.ok:
        raise ArchiveProblem(f"the restored log does not verify in {where}: notification {report.bad_notification_id}: {report.problem}")
    if (report.checked, report.last_id, report.head) != (walk.count, walk.last_id, walk.head.hex()):
        raise ArchiveProblem(
            f"the restored log in {where} does not match the archive: {report.checked} events, last id {report.last_id} "
            f"(expected {walk.count} events, last id {walk.last_id})"
        )


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
        self.con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the stream index stays in memory while it grows
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
            follower, self._follower = self._follower, None
            stored = self._refuse_if_bad(follower.finish())
        else:
            stored = self._refuse_if_bad(check_stored(self.tmp, self.events, self.chain))
        if (stored.count, stored.last_id) != (walk.count, walk.last_id):
            raise ArchiveProblem(
                f"the restored log in the new file {self.tmp} does not match the archive: {stored.count} events, "
                f"last id {stored.last_id} (expected {walk.count} events, last id {walk.last_id})"
            )
        walk.head = stored.head
        # everything into the file, and no -wal beside it: the rename moves one file only
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
        if keep_old and _sqlite_event_count_locked(holder):
            moved = _link_aside(target, stamp)
    try:
        os.replace(new, target)
        fsync_dir(target.parent)
    finally:
        if holder is not None:
            holder.close()
    return moved


def _sqlite_event_count_locked(con: sqlite3.Connection) -> int:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("stored_events", "stored_events_chain") if t in tables)


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


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pg_url(location: StoreLocation, schema: str) -> str:
    auth = quote(location.user or "postgres", safe="")
    if location.password:
        auth += ":" + quote(location.password, safe="")
    return f"postgresql://{auth}@{location.host}:{location.port}/{location.dbname}?schema={schema}"


class PostgresLoader:
    """Fills a staging schema with COPY, verifies it, and swaps its tables into the target in one transaction.

    The archive's links are recomputed while it is read (``ChainWalk``), then again from the staging tables
    (``verify_chain``)."""

    checks_links = False

    def __init__(self, location: StoreLocation, *, force: bool, stamp: str, open_store: Callable[[str], Any]):
        self.location = location
        self.schema = location.schema or "public"
        self.moved_to: str | None = None
        self._force = force
        self._stamp = stamp.lower()
        self._open_store = open_store
        self._replaced = False
        existing = self._target_rows()
        if existing and not force:
            raise RestoreRefused(
                f"{location.redacted()} already holds events ({existing} rows): restore only into an empty store, "
                "or pass --force to move it aside (its tables go to another schema, never dropped)"
            )
        self.staging = f"tc_restore_{self._stamp}_{secrets.token_hex(3)}"
        self.staging_url = _pg_url(location, self.staging)
        app = open_store(self.staging_url)  # the application creates its tables, in the staging schema
        try:
            self.events, self.chain = app.recorder.events_table_name, app.recorder.chain_table_name
        finally:
            app.close()
        from infrastructure.backup.leftovers import staging_comment

        with _pg_connect(location) as conn:  # so `backup prune` can tell it is in use
            conn.execute(f'COMMENT ON SCHEMA "{self.staging}" IS {_literal(staging_comment())}')
        self.conn = _pg_connect(location)
        self.conn.autocommit = False
        self.conn.execute(f'LOCK TABLE "{self.staging}"."{self.events}" IN EXCLUSIVE MODE')
        self.count = 0
        self.last_id = 0

    def _target_rows(self) -> int:
        conn = _pg_connect(self.location)
        try:
            total = 0
            for table in ("tradecore_events", "tradecore_events_chain"):
                if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{table}"',)).fetchone()[0] is not None:
                    total += conn.execute(f'SELECT count(*) FROM "{self.schema}"."{table}"').fetchone()[0]
            return total
        finally:
            conn.close()

    def append(self, columns: list[list]) -> None:
        """Copy rows given as the six column lists of rows.SCHEMA."""
        ids, oids, versions, topics, states, links = columns
        with self.conn.cursor() as curs:
            with curs.copy(
                f'COPY "{self.staging}"."{self.events}" (notification_id, originator_id, originator_version, topic, state) FROM STDIN'
            ) as copy:
                for row in zip(ids, oids, versions, topics, states):
                    copy.write_row(row)
            with curs.copy(f'COPY "{self.staging}"."{self.chain}" (notification_id, link) FROM STDIN') as copy:
                for row in zip(ids, links):
                    copy.write_row(row)
        self.count += len(ids)
        if ids:
            self.last_id = ids[-1]

    def seal_and_check(self, walk: ChainWalk) -> None:
        """Commit into the staging schema and verify it as a store (the target is not touched)."""
        if self.last_id:
            self.conn.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                (f'"{self.staging}"."{self.events}"', self.last_id),
            )
        self.conn.commit()
        self.conn.close()
        _check_built(self._open_store, self.staging_url, walk, f"the staging schema {self.staging}")

    def _moved_name(self, conn: Any) -> str:
        base = f"{self.schema}_moved_{self._stamp}"
        if len(base.encode()) > PG_NAME_LIMIT - 4:
            base = f"tc_moved_{self._stamp}"
        name, n = base, 1
        while conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone():
            n += 1
            name = f"{base}_{n}"
        return name

    def replace(self) -> None:
        """One transaction: the target's tables move aside (or, empty, are dropped), the staging tables move in."""
        conn = _pg_connect(self.location)
        target, staging, events, chain = self.schema, self.staging, self.events, self.chain
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{target}"')
                present = [t for t in (events, chain)
                           if conn.execute("SELECT to_regclass(%s)", (f'"{target}"."{t}"',)).fetchone()[0] is not None]
                rows = 0
                for table in present:  # waits for writers, then keeps everyone out until the commit
                    conn.execute(f'LOCK TABLE "{target}"."{table}" IN ACCESS EXCLUSIVE MODE')
                    rows += conn.execute(f'SELECT count(*) FROM "{target}"."{table}"').fetchone()[0]
                if rows and not self._force:
                    raise RestoreRefused(f"{self.location.redacted()} received events during the restore; nothing was changed")
                if rows:
                    moved = self._moved_name(conn)
                    conn.execute(f'CREATE SCHEMA "{moved}"')
                    for table in present:
                        conn.execute(f'ALTER TABLE "{target}"."{table}" SET SCHEMA "{moved}"')
                    self.moved_to = f"schema {moved}"
                else:
                    for table in present:
                        conn.execute(f'DROP TABLE "{target}"."{table}"')
                for table in (events, chain):
                    conn.execute(f'ALTER TABLE "{staging}"."{table}" SET SCHEMA "{target}"')
                # What stays behind is the library's insert function and its type (unused: the chained
                # recorder writes rows itself); the target's own are there or made when it is next opened.
                conn.execute(f'DROP SCHEMA "{staging}" CASCADE')
            self._replaced = True
        finally:
            conn.close()

    def abort(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.rollback()
                self.conn.close()
        finally:
            if not self._replaced:
                conn = _pg_connect(self.location)
                try:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.staging}" CASCADE')
                finally:
                    conn.close()


def open_loader(url: str, *, force: bool, stamp: str, open_store: Callable[[str], Any]) -> Any:
    """A loader for the store at ``url`` (refusing a non-empty one unless ``force``).

    ``open_store`` (api.bootstrap's) opens a store by URL: the loader lets the
    application create its own tables before filling them.
    """
    location = parse_store_url(url)
    if location.backend == "sqlite":
        return SQLiteLoader(location, force=force, stamp=stamp, open_store=open_store)
    return PostgresLoader(location, force=force, stamp=stamp, open_store=open_store)
