"""The hash chain's PostgreSQL recorder (infrastructure/eventstore/chain.py says what the chain is).

In a module of its own so that a process on SQLite never imports eventsourcing.postgres and psycopg;
``chain.ChainedPostgresRecorder`` still names it (imported on first use).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from infrastructure.eventstore.links import GENESIS, next_links
from infrastructure.eventstore.read_ahead import pages_read_ahead

__all__ = ["ChainedPostgresRecorder"]


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """PostgreSQL application recorder that writes the chain link with each event.

    The library locks the events table (EXCLUSIVE) for each insert, so links
    are computed one transaction at a time, in notification order.
    """

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events"):
        # No library setting may route writes around the chain (see eventstore.store).
        if getattr(datastore, "enable_db_functions", False):
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS would write events without chain links; it is refused")
        if getattr(datastore, "originator_id_type", "uuid") != "uuid":
            raise ValueError("ORIGINATOR_ID_TYPE must be uuid: the chain covers stream ids as stored in a uuid column")
        chain_table_name = f"{events_table_name}_chain"
        for name in (events_table_name, chain_table_name):
            if len(name.encode()) > 63:  # PostgreSQL would cut it silently, and two long names could collide
                raise ValueError(f"table name {name!r} is longer than PostgreSQL's 63 bytes; use a shorter application name")
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = chain_table_name
        schema = Identifier(self.datastore.schema)
        chain = Identifier(self.chain_table_name)
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {}.{} (notification_id bigint PRIMARY KEY, link bytea NOT NULL)").format(
                schema, chain
            )
        )
        self._insert_columns = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{}[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(schema, Identifier(self.events_table_name), SQL(self.datastore.originator_id_type))
        self._select_prev = SQL(
            "SELECT link FROM {}.{} WHERE notification_id < %s ORDER BY notification_id DESC LIMIT 1"
        ).format(schema, chain)
        self._insert_links = SQL(
            "INSERT INTO {}.{} (notification_id, link) SELECT * FROM unnest(%b::bigint[], %b::bytea[])"
        ).format(schema, chain)
        self._select_joined = SQL(
            "SELECT e.notification_id AS e_id, l.notification_id AS l_id, e.originator_id, e.originator_version, "
            "e.topic, e.state, l.link FROM {}.{} e FULL OUTER JOIN {}.{} l ON l.notification_id = e.notification_id "
            "ORDER BY coalesce(e.notification_id, l.notification_id)"
        ).format(schema, Identifier(self.events_table_name), schema, chain)
        self._select_head = SQL(
            "SELECT notification_id, link FROM {}.{} ORDER BY notification_id DESC LIMIT 1"
        ).format(schema, chain)

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[Any], **kwargs: Any) -> None:
        # The library sends an array of a composite type, which psycopg dumps
        # in Python with regular expressions; four plain arrays in binary (%b) need no quoting.
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_columns,
            (
                [s.originator_id for s in stored_events],
                [s.originator_version for s in stored_events],
                [s.topic for s in stored_events],
                [s.state for s in stored_events],
            ),
        )

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[Any], **kwargs: Any):
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not ids:
            return ids
        curs.execute(self._select_prev, (ids[0],))
        found = curs.fetchone()
        previous = bytes(found["link"]) if found else GENESIS
        links = next_links(previous, ids, [(e.originator_id, e.originator_version, e.topic, e.state)
                                           for e in stored_events])
        curs.execute(self._insert_links, (list(ids), links))
        return ids

    def iter_chain_rows(self) -> Iterator[tuple[int | None, int | None, Any, int, str, bytes, bytes | None]]:
        """Events and links joined on notification id, in order, streamed."""
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor(name="tradecore_chain_verify") as curs:
                curs.execute(self._select_joined)
                for r in curs:
                    yield (
                        r["e_id"], r["l_id"], r["originator_id"], r["originator_version"], r["topic"],
                        bytes(r["state"]) if r["state"] is not None else None,
                        bytes(r["link"]) if r["link"] is not None else None,
                    )

    def select_log_rows(self, after: int, limit: int, topics: Sequence[str] = ()) -> list[tuple[int, str, bytes]]:
        """(notification id, topic, state) after an id: the lean read of the log."""
        sql = SQL("SELECT notification_id, topic, state FROM {}.{} WHERE notification_id > %s").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        params: list[Any] = [after]
        if topics:
            sql += SQL(" AND topic = ANY(%s)")
            params.append(list(topics))
        sql += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            # Binary results: the state comes as its bytes, not as hex text the server writes and psycopg parses.
            curs.execute(sql, params, binary=True)
            return curs.fetchall()

    def iter_log_pages(self, after: int, page: int, topics: Sequence[str] = ()) -> Iterator[list[tuple[int, str, bytes]]]:
        """``select_log_rows`` pages after an id until a short one, each next page fetched while this one is used
        (read_ahead.py): the server's work and the wire overlap the consumer's decoding."""
        topics = tuple(topics)
        return pages_read_ahead(lambda start: self.select_log_rows(start, page, topics), after, page)

    def link_at(self, notification_id: int) -> bytes | None:
        """The stored chain link of a notification (None when there is none)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT link FROM {}.{} WHERE notification_id = %s").format(
                    Identifier(self.datastore.schema), Identifier(self.chain_table_name)
                ),
                (notification_id,),
            )
            row = curs.fetchone()
        return bytes(row["link"]) if row else None

    def chain_head(self) -> tuple[int, bytes]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_head)
            row = curs.fetchone()
        return (row["notification_id"], bytes(row["link"])) if row else (0, GENESIS)
