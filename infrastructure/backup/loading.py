"""Writing archived rows into a store, keeping their notification ids, replacing the target only once verified.

Every restore builds the new log beside the target, verifies it there (every
chain link recomputed from the rows as stored, the count and head compared with
the archive's), and only then puts it in the target's place in one atomic step.
A failure or a kill at any moment leaves either the old log or the new one at
the target, never an empty or half-restored one.

SQLite (sqlite_restore.py): the store is built in a hidden file next to the target (created by the
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

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from application.errors import RestoreRefused  # defined there (api/ maps it); this path stays valid
from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.sqlite_restore import SQLiteLoader, replace_sqlite_file  # this path stays valid
from infrastructure.backup.walk import ChainWalk
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import PG_NAME_LIMIT, StoreLocation, _pg_connect, parse_store_url

__all__ = ["PostgresLoader", "RestoreRefused", "SQLiteLoader", "open_loader", "replace_sqlite_file"]


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
