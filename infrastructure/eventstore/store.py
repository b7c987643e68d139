"""Choosing the event store from one URL.

    sqlite:///var/events.db          (relative path; folder created, file mode 0600)
    sqlite:////abs/path/events.db    (absolute path)
    sqlite:///:memory:               (in-memory, for throwaway replays and tests)
    postgresql://user[:pw]@host:port/db[?schema=name]

The URL becomes the eventsourcing environment of the application: the
persistence module, its settings, and our chained recorder classes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.utils import get_topic

from infrastructure.eventstore.chain import ChainedPostgresRecorder, ChainedSQLiteRecorder


class StoreURLError(ValueError):
    """The event store URL cannot be used; the message says why."""


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL: which backend, and where."""

    url: str
    backend: str  # "sqlite" | "postgresql"
    sqlite_path: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    schema: str | None = None

    @property
    def is_memory(self) -> bool:
        return self.backend == "sqlite" and self.sqlite_path == ":memory:"

    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        if self.backend == "sqlite":
            return self.url
        user = f"{self.user}@" if self.user else ""
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"postgresql://{user}{self.host}:{self.port}/{self.dbname}{schema}"


def parse_store_url(url: str) -> StoreLocation:
    """Parse and check a store URL; a bad one raises StoreURLError naming the problem."""
    if not isinstance(url, str) or not url:
        raise StoreURLError("event store URL is empty")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise StoreURLError(f"{url!r}: no database file after sqlite:///")
        return StoreLocation(url=url, backend="sqlite", sqlite_path=path)
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise StoreURLError(f"{url!r}: no database name (postgresql://user@host:port/DBNAME)")
        if not parsed.hostname:
            raise StoreURLError(f"{url!r}: no host")
        query = parse_qs(parsed.query)
        schema = query.get("schema", [None])[0]
        if schema is not None and not schema.replace("_", "").isalnum():
            raise StoreURLError(f"{url!r}: schema {schema!r} must be letters, digits and underscores")
        try:
            port = parsed.port or 5432
        except ValueError:
            raise StoreURLError(f"{url!r}: bad port") from None
        return StoreLocation(
            url=url,
            backend="postgresql",
            host=parsed.hostname,
            port=port,
            user=unquote(parsed.username) if parsed.username else "postgres",
            password=unquote(parsed.password) if parsed.password else "",
            dbname=dbname,
            schema=schema,
        )
    raise StoreURLError(f"{url!r}: unsupported scheme; use sqlite:///PATH or postgresql://user@host:port/db")


def prepare_sqlite_file(path: str) -> None:
    """Create the folder and an empty database file readable by its owner only."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    if not file.exists():
        fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(file, 0o600)


def _pg_connect(location: StoreLocation):
    import psycopg

    return psycopg.connect(
        host=location.host,
        port=location.port,
        user=location.user,
        password=location.password or None,
        dbname=location.dbname,
        autocommit=True,
        connect_timeout=5,
    )


def ensure_postgres_schema(location: StoreLocation) -> None:
    """Create the schema named in the URL if it does not exist yet."""
    if not location.schema:
        return
    with _pg_connect(location) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{location.schema}"')


@contextmanager
def store_setup_lock(location: StoreLocation) -> Iterator[None]:
    """Serialise table creation across processes starting at the same moment.

    PostgreSQL refuses concurrent CREATE ... IF NOT EXISTS / CREATE OR REPLACE
    FUNCTION on the same objects ("tuple concurrently updated"); an advisory
    lock makes the second process wait for the first one's setup instead.
    SQLite needs nothing: its file lock already serialises.
    """
    if location.backend != "postgresql":
        yield
        return
    with _pg_connect(location) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))


_SETUP_LOCK_KEY = 0x7472_6164_6563  # "tradec"


def eventsourcing_env(location: StoreLocation, app_name: str) -> dict[str, str]:
    """The eventsourcing settings for this store (prefixed, so they win over os.environ)."""
    prefix = app_name.upper() + "_"
    if location.backend == "sqlite":
        if not location.is_memory:
            prepare_sqlite_file(location.sqlite_path)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": location.sqlite_path if not location.is_memory else "file:tradecore?mode=memory&cache=shared",
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedSQLiteRecorder),
        }
    else:
        ensure_postgres_schema(location)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": location.dbname,
            "POSTGRES_HOST": location.host,
            "POSTGRES_PORT": str(location.port),
            "POSTGRES_USER": location.user,
            "POSTGRES_PASSWORD": location.password or "",
            "POSTGRES_SCHEMA": location.schema or "public",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedPostgresRecorder),
        }
    return {prefix + key: value for key, value in env.items()}
