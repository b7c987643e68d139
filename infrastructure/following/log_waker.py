"""How a read node learns that the log grew: LISTEN/NOTIFY on PostgreSQL, polling elsewhere.

On PostgreSQL, a statement-level trigger on the events table (installed once per schema, idempotently,
by the first read node that follows it) sends ``NOTIFY tradecore_log, '<schema>'`` in the writer's
transaction, so every listening read node wakes when the append commits, on this machine or another.
The trigger only notifies: it writes nothing and the log stays as it was. When the trigger cannot be
installed (no privilege) or the listening connection drops, the node falls back to polling at its
usual interval, so a missed notification costs at most one poll; it never stops following.

``LogWaker.wait(timeout)`` returns when a notification arrives or after ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time

from infrastructure.eventstore.store import PG_EVENTS_TABLE, StoreLocation, parse_store_url

log = logging.getLogger("tradecore.following")
CHANNEL = "tradecore_log"
_FUNCTION = "tradecore_notify_append"


class PollingWaker:
    """No notifications (SQLite, or PostgreSQL without the trigger): wait the whole timeout."""

    how = "polling"

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop or threading.Event()

    def wait(self, timeout: float) -> None:
        self.stop.wait(timeout)

    def close(self) -> None:
        pass


class NotifyWaker:
    """LISTEN on the store's database; wakes on the trigger's NOTIFY for this schema."""

    how = "listen/notify"

    def __init__(self, location: StoreLocation, stop: threading.Event | None = None):
        self.location = location
        self.schema = location.schema or "public"
        self.stop = stop or threading.Event()
        self.conn = None
        install_notify_trigger(location)
        self._listen()

    def _listen(self) -> None:
        import psycopg

        loc = self.location
        self.conn = psycopg.connect(host=loc.host, port=loc.port, user=loc.user, password=loc.password or None,
                                    dbname=loc.dbname, autocommit=True, connect_timeout=5)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if self.conn is None:
                    self._listen()
                if self._received(min(left, 0.5), 1):
                    self._received(0.001, 1000)  # what arrived together wakes once: the projector reads it all
                    return
            except Exception as exc:  # noqa: BLE001 - a dropped connection: poll until it is back
                log.warning("LISTEN on the event store failed (%s); polling until it reconnects", exc)
                self._drop()
                self.stop.wait(min(left, 1.0))
                return

    def _received(self, timeout: float, most: int) -> bool:
        """Whether a notification for this schema arrived within ``timeout`` (the generator is closed each time:
        it holds the connection's lock while open)."""
        notes = self.conn.notifies(timeout=timeout, stop_after=most)
        try:
            return any([note.payload == self.schema for note in notes])
        finally:
            notes.close()

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None

    def close(self) -> None:
        self._drop()


def install_notify_trigger(location: StoreLocation) -> None:
    """The statement-level trigger that notifies ``tradecore_log`` with the schema after each append (idempotent)."""
    import psycopg

    schema = location.schema or "public"
    table = f'"{schema}"."{PG_EVENTS_TABLE}"'
    with psycopg.connect(host=location.host, port=location.port, user=location.user,
                         password=location.password or None, dbname=location.dbname, connect_timeout=5) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tradecore_notify_trigger'))")
        found = conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)", (_FUNCTION, table)).fetchone()
        if found:
            return
        conn.execute(
            f'CREATE OR REPLACE FUNCTION "{schema}".{_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA); RETURN NULL; END $$")
        conn.execute(f'CREATE TRIGGER {_FUNCTION} AFTER INSERT ON {table} '
                     f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".{_FUNCTION}()')


def log_waker(store_url: str, stop: threading.Event | None = None) -> PollingWaker | NotifyWaker:
    """LISTEN/NOTIFY for a PostgreSQL store (polling if the trigger cannot be installed); polling for SQLite."""
    location = parse_store_url(store_url)
    if location.backend != "postgresql":
        return PollingWaker(stop)
    try:
        return NotifyWaker(location, stop)
    except Exception as exc:  # noqa: BLE001 - e.g. no privilege to create the trigger: polling still follows
        log.warning("cannot follow %s by LISTEN/NOTIFY (%s); polling instead", location.redacted(), exc)
        return PollingWaker(stop)
