"""Tamper evidence: a hash chain over the notification log.

Each stored event gets a link, written in the same transaction as the event.
Version 2 (every link written now) covers the exact stored value of every
column, with its storage type and length, so no edit of any column can keep
its link:

    link(n) = 0x02 | sha256(link(n-1) | id as 8 bytes | field(originator id) | field(version)
                            | field(topic) | field(state))
    field(v) = type tag (t text, b blob, i integer, r real, n null) | 8-byte length | bytes

The text is the stored text (SQLite: 32 lowercase hex digits for a stream id;
PostgreSQL's uuid column gives the same 32 digits, so a log moved between the
backends keeps its links), an integer its decimal digits, a blob its bytes.

Version 1 links (32 bytes, no tag byte; logs written before version 2) are
still verified: ``sha256(link(n-1) | "id|oid|version|topic|" | state)``, and
a version 1 row must hold exactly what the version 1 writer stored (a stream
id of 32 lowercase hex digits, an integer version, text topic, blob state),
so re-spelling a stream id is caught there too. A version 1 link after a
version 2 one is a downgrade and fails.

The chain lives in its own table, ``<events table>_chain``. ``verify_chain``
walks both tables in notification order and names the first notification id
where they disagree: an edited or reordered event (its link does not match),
a deleted one (a link without an event, or a gap in the ids where the next
link no longer follows), or an inserted one (an event without a link).

Anyone who can rewrite both tables can rebuild the chain; that is why signed
anchors of the chain head and backup manifests are kept outside the store.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from infrastructure.eventstore.links import (CHAIN_VERSION, GENESIS, _V2, chain_link, chain_link_v1, link_matches,
                                            link_verdict, next_links)

_LINK_SIZE = len(_V2) + 32  # a version 2 link: the tag byte and a sha256 digest

__all__ = ["CHAIN_VERSION", "GENESIS", "ChainReport", "ChainedPostgresRecorder", "ChainedSQLiteRecorder", "chain_link",
           "chain_link_v1", "link_matches", "next_links", "verify_chain"]


def __getattr__(name: str) -> Any:
    # The PostgreSQL recorder lives in chain_postgres.py, imported only by a process that opens a PostgreSQL
    # store: eventsourcing.postgres pulls in psycopg, its pool and asyncio (~0.1 s of every command's start).
    if name == "ChainedPostgresRecorder":
        from infrastructure.eventstore.chain_postgres import ChainedPostgresRecorder

        return ChainedPostgresRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ChainReport:
    """What verify_chain found: ok, the first bad notification id and why."""

    ok: bool
    checked: int
    head: str
    last_id: int
    bad_notification_id: int | None = None
    problem: str | None = None


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder that writes the chain link with each event."""

    def __init__(self, datastore: Any, events_table_name: str = "stored_events"):
        self.chain_table_name = f"{events_table_name}_chain"
        super().__init__(datastore, events_table_name)
        self._log_columns_statement: str | None = None
        # (count, first notification id, the links joined): link k at notification id first + k
        self._insert_links_statement = (
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) "
            f"INSERT INTO {self.chain_table_name} (notification_id, link) "
            f"SELECT ? + i, substr(?, i * {_LINK_SIZE} + 1, {_LINK_SIZE}) FROM k"
        )

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} "
            "(notification_id INTEGER PRIMARY KEY, link BLOB NOT NULL)",
        ]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[Any], **_: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id, s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        return self._insert_rows(c, rows)

    def insert_rows(self, rows: Sequence[tuple[str, int, str, bytes]]) -> Sequence[int]:
        """Insert (originator id hex, version, topic, state) rows and their links in one transaction.

        What ``insert_events`` does, for a caller that maps events straight to rows
        (``EventMapper.to_row``) instead of building a ``StoredEvent`` for each.
        """
        if not rows:
            return []
        with self.datastore.transaction(commit=True) as c:
            return self._insert_rows(c, rows)

    def _insert_rows(self, c: SQLiteCursor, rows: Sequence[tuple[str, int, str, bytes]]) -> Sequence[int]:
        # The first insert takes the write lock; while we hold it rowids are
        # max(rowid)+1, +2, ... so the batch's ids follow from the first one.
        c.execute(self.insert_events_statement, rows[0])
        first = c.lastrowid
        if len(rows) > 1:
            c.executemany(self.insert_events_statement, rows[1:])
        ids = list(range(first, first + len(rows)))
        c.execute(
            f"SELECT link FROM {self.chain_table_name} WHERE notification_id < ? "
            "ORDER BY notification_id DESC LIMIT 1",
            (first,),
        )
        found = c.fetchone()
        previous = found[0] if found else GENESIS
        # One statement for the batch's links (version 2 links, each of _LINK_SIZE bytes): they go as one blob,
        # cut in SQLite, instead of a bound row each.
        joined = b"".join(next_links(previous, ids, rows))
        if len(joined) != _LINK_SIZE * len(ids):
            raise ValueError(f"chain links of {_LINK_SIZE} bytes expected for {len(ids)} events, got {len(joined)} bytes")
        c.execute(self._insert_links_statement, (len(ids), first, joined))
        return ids

    def iter_chain_rows(self) -> Iterator[tuple[int | None, int | None, Any, int, str, bytes, bytes | None]]:
        """Events and links joined on notification id, in order, streamed."""
        e, l = self.events_table_name, self.chain_table_name
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor  # plain tuples, not sqlite3.Row
            cursor.row_factory = None
            cursor.execute(
                f"SELECT e.rowid, l.notification_id, e.originator_id, e.originator_version, e.topic, e.state, l.link "
                f"FROM {e} e FULL OUTER JOIN {l} l ON l.notification_id = e.rowid "
                f"ORDER BY coalesce(e.rowid, l.notification_id)"
            )
            while rows := cursor.fetchmany(10_000):
                yield from rows

    def select_log_rows(self, after: int, limit: int, topics: Sequence[str] = ()) -> list[tuple[int, str, bytes]]:
        """(notification id, topic, state) after an id: the lean read of the log."""
        sql = f"SELECT rowid, topic, state FROM {self.events_table_name} WHERE rowid > ?"
        params: list[Any] = [after]
        if topics:
            sql += f" AND topic IN ({','.join('?' * len(topics))})"
            params += list(topics)
        sql += " ORDER BY rowid LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor  # a fresh cursor per transaction: plain tuples, not sqlite3.Row
            cursor.row_factory = None
            cursor.execute(sql, params)
            return cursor.fetchall()

    ROWS_PER_READ = 1000
    """The most rows ``iter_log_pages`` reads at a time (~0.5 MB of row objects for candle events): a page's rows
    are still in the core's cache when they are decoded. Reading from a local file, a smaller read costs nothing;
    reads of 5,000 rows decoded ~3% slower on the 2-core development machine (1 MB of L2 cache a core)."""

    def iter_log_pages(self, after: int, page: int, topics: Sequence[str] = ()) -> Iterator[list[tuple[int, str, bytes]]]:
        """``select_log_rows`` pages after an id, of at most ``ROWS_PER_READ`` rows whatever ``page`` asks for,
        until a short one."""
        size = min(page, self.ROWS_PER_READ)
        while True:
            rows = self.select_log_rows(after, size, topics)
            yield rows
            if len(rows) < size:
                return
            after = rows[-1][0]
            del rows

    def select_log_columns(self, after: int, limit: int) -> tuple[Any, Any, Any] | None:
        """``select_log_rows(after, limit)`` as three arrow columns (ids, topics, states as text), read by one
        aggregate statement with the GIL released (log_columns.py); None: read this page by rows."""
        from infrastructure.eventstore import log_columns  # (pyarrow: imported by the processes that read so)

        sql = self._log_columns_statement
        if sql is None:
            sql = self._log_columns_statement = log_columns.statement(self.events_table_name)
        with self.datastore.transaction(commit=False) as c:
            return log_columns.log_columns(c.sqlite_cursor, sql, after, limit)

    def link_at(self, notification_id: int) -> bytes | None:
        """The stored chain link of a notification (None when there is none)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT link FROM {self.chain_table_name} WHERE notification_id = ?", (notification_id,))
            row = c.fetchone()
        return bytes(row[0]) if row else None

    def chain_head(self) -> tuple[int, bytes]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT notification_id, link FROM {self.chain_table_name} ORDER BY notification_id DESC LIMIT 1")
            row = c.fetchone()
        return (row[0], bytes(row[1])) if row else (0, GENESIS)


def verify_chain(recorder: Any) -> ChainReport:
    """Recompute the chain and name the first notification id that breaks it.

    Python's cyclic garbage collector is paused meanwhile: each row is a new tuple, and a collection every 700
    of them would walk every live object again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _verify(recorder)
    finally:
        if was_enabled:
            gc.enable()


def _verify(recorder: Any) -> ChainReport:
    previous = GENESIS
    checked = 0
    last_id = 0
    seen_v2 = False
    topic_fields: dict[str, bytes] = {}
    for event_id, link_id, oid, version, topic, state, link in recorder.iter_chain_rows():
        if link_id is None:
            return ChainReport(
                False, checked, previous.hex(), last_id, event_id,
                f"notification {event_id} has no chain link (inserted outside the store)",
            )
        if event_id is None:
            return ChainReport(False, checked, previous.hex(), last_id, link_id, f"notification {link_id} is missing (deleted)")
        link = bytes(link)
        matched = link_verdict(previous, event_id, oid, version, topic, state, link, seen_v2, topic_fields)
        if matched is False:
            if event_id > last_id + 1:
                # The ids jump and the link no longer follows: events were deleted together with their links.
                gap = f"{last_id + 1}" if event_id == last_id + 2 else f"{last_id + 1}..{event_id - 1}"
                noun = "notification" if event_id == last_id + 2 else "notifications"
                verb = "is" if event_id == last_id + 2 else "are"
                return ChainReport(
                    False, checked, previous.hex(), last_id, last_id + 1,
                    f"{noun} {gap} {verb} missing (deleted with {'its chain link' if verb == 'is' else 'their chain links'}): "
                    f"the link of notification {event_id} does not follow notification {last_id or 'the start'}",
                )
            return ChainReport(
                False, checked, previous.hex(), last_id, event_id,
                f"notification {event_id} does not match its chain link (edited or reordered)",
            )
        seen_v2 = seen_v2 or matched is True
        previous = link
        checked += 1
        last_id = event_id
    return ChainReport(True, checked, previous.hex(), last_id)
