"""Choosing the event store from one URL.

    sqlite:///var/events.db          (relative path; folder created, file mode 0600)
    sqlite:////abs/path/events.db    (absolute path)
    sqlite:///:memory:               (in-memory, for throwaway replays and tests)
    postgresql://user[:pw]@host:port/db[?schema=name]

The URL becomes the eventsourcing environment of the application: the
persistence module, its settings, and our chained recorder classes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlparse

from eventsourcing.utils import get_topic

from application.errors import StoreMissing, StoreURLError  # defined there (api/ maps them); this path stays valid
from infrastructure.eventstore.chain import ChainedSQLiteRecorder

# Named by its topic, so that a process on SQLite never imports it (eventsourcing.postgres, psycopg).
POSTGRES_RECORDER_TOPIC = "infrastructure.eventstore.chain_postgres:ChainedPostgresRecorder"


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


PG_NAME_LIMIT = 63  # PostgreSQL cuts identifiers longer than NAMEDATALEN - 1 bytes, silently
PG_EVENTS_TABLE = "tradecore_events"  # the library names it after the application
URL_PARAMETERS = {"schema"}


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    try:
        parsed = urlparse(url)
        if parsed.password:
            netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
            return parsed._replace(netloc=netloc).geturl()
    except ValueError:
        pass
    return url


def check_pg_name(name: str, what: str, url: str) -> None:
    """Refuse a PostgreSQL identifier that is empty or longer than 63 bytes (PostgreSQL would cut it)."""
    size = len(name.encode())
    if not name or size > PG_NAME_LIMIT:
        raise StoreURLError(
            f"{redact_url(url)!r}: {what} {name!r} is {size} bytes; PostgreSQL names are 1 to {PG_NAME_LIMIT} bytes "
            "and a longer one would be cut silently (and could collide with another); choose a shorter name"
        )


def parse_store_url(url: str) -> StoreLocation:
    """Parse and check a store URL; a bad one raises StoreURLError naming the problem.

    Refused: unknown URL parameters (``?shema=x`` must not write into ``public``), parameters
    on a SQLite URL, a repeated or empty schema, and names PostgreSQL would cut (63 bytes),
    including the chain table derived from the events table.
    """
    if not isinstance(url, str) or not url:
        raise StoreURLError("event store URL is empty")
    shown = redact_url(url)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise StoreURLError(f"{url!r}: no database file after sqlite:///")
        if "?" in path or "#" in path:
            raise StoreURLError(f"{url!r}: a sqlite URL takes no parameters (sqlite:///PATH); remove what follows '?'")
        return StoreLocation(url=url, backend="sqlite", sqlite_path=path)
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise StoreURLError(f"{shown!r}: no database name (postgresql://user@host:port/DBNAME)")
        if not parsed.hostname:
            raise StoreURLError(f"{shown!r}: no host")
        if parsed.fragment:
            raise StoreURLError(f"{shown!r}: unexpected '#{parsed.fragment}'")
        try:
            pairs = parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query))
        except ValueError:
            raise StoreURLError(f"{shown!r}: cannot read the parameters {parsed.query!r} (use ?schema=NAME)") from None
        unknown = sorted({key for key, _ in pairs} - URL_PARAMETERS)
        if unknown:
            raise StoreURLError(
                f"{shown!r}: unknown URL parameter(s) {', '.join(unknown)}; the only one is schema (?schema=NAME)"
            )
        schemas = [value for key, value in pairs if key == "schema"]
        if len(schemas) > 1:
            raise StoreURLError(f"{shown!r}: schema is given {len(schemas)} times; give it once")
        schema = schemas[0] if schemas else None
        if schema is not None:
            if not schema.replace("_", "").isalnum() or not schema.isascii():
                raise StoreURLError(f"{shown!r}: schema {schema!r} must be ASCII letters, digits and underscores")
            check_pg_name(schema, "schema", url)
        check_pg_name(PG_EVENTS_TABLE + "_chain", "chain table", url)
        try:
            port = parsed.port or 5432
        except ValueError:
            raise StoreURLError(f"{shown!r}: bad port") from None
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
    raise StoreURLError(f"{shown!r}: unsupported scheme; use sqlite:///PATH or postgresql://user@host:port/db")


def require_existing_store(location: StoreLocation) -> None:
    """Raise StoreMissing unless the store holds a tradecore event log already.

    Read-only commands (audit verify, events, replay, report, query, config drift,
    health) call this first, so a typo in the URL is an error, never a new empty
    store that then "verifies".
    """
    hint = "check the URL (read-only commands never create a store)"
    if location.backend == "sqlite":
        if location.is_memory:
            return
        path = Path(location.sqlite_path)
        if not path.is_file():
            raise StoreMissing(f"no event store at {location.redacted()}: {path} does not exist; {hint}")
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)) as conn:
                found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stored_events'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreMissing(f"no event store at {location.redacted()}: {path} is not a SQLite database ({exc}); {hint}") from None
        if not found:
            raise StoreMissing(f"no event store at {location.redacted()}: {path} holds no event log; {hint}")
        return
    from application.errors import StoreUnavailable

    try:
        with _pg_connect(location) as conn:
            schema = location.schema or "public"
            events = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{PG_EVENTS_TABLE}"',)).fetchone()[0]
    except Exception as exc:  # connection refused, bad credentials, no such database
        raise StoreUnavailable(f"cannot open the event store {location.redacted()}: {exc}") from None
    if events is None:
        raise StoreMissing(
            f"no event store at {location.redacted()}: schema {location.schema or 'public'!r} holds no event log "
            f"(no table {PG_EVENTS_TABLE}); {hint}"
        )


SQLITE_PAGE_SIZE = 32_768
"""Bytes per page of a new SQLite log (SQLite's default is 4,096). A stored event is ~0.3-1 KB, so a 4 KB page
holds a handful: a backtest's transaction of 20,906 events spent ~0.15 s CPU inserting and committing them
(page splits, a WAL frame and a write per page, the checkpoint copying each frame back), ~0.07 s at 32 KB,
while a transaction of a few events, a scan of the log and a stream lookup cost the same (measured on copies
of the bundled log, 4 to 64 KB). A log created before keeps its page size; the rows are the same either way."""


def prepare_sqlite_file(path: str) -> None:
    """Create the folder and an empty database file readable by its owner only; a new (empty) file gets
    ``SQLITE_PAGE_SIZE`` and the write-ahead log (which the store would turn on anyway) before any table."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    if not file.exists():
        fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(file, 0o600)
    if file.stat().st_size == 0:  # a page size holds only if set before the file's first page is written
        import sqlite3

        with contextlib.closing(sqlite3.connect(file, isolation_level=None, timeout=10)) as conn:
            conn.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")


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


class LibrarySettingRefused(StoreURLError):
    """An eventsourcing setting in the environment would change how events are written; the message names it."""


# eventsourcing reads these from os.environ (``NAME`` or ``<APP>_NAME``). Each would change how or
# where rows are written, or would be silently ignored by tradecore's own mapper while the operator
# believes it is in force, so a value other than tradecore's is refused rather than overridden.
_TRUE = {"y", "yes", "t", "true", "on", "1"}
REFUSED_LIBRARY_SETTINGS: dict[str, tuple[str, object]] = {
    # name: (why, the predicate of a refused value)
    "POSTGRES_ENABLE_DB_FUNCTIONS": ("writes events through stored functions that bypass the hash chain", lambda v: v.lower() in _TRUE),
    "IS_SNAPSHOTTING_ENABLED": ("aggregates would be read from snapshots, which the hash chain does not cover", lambda v: v.lower() in _TRUE),
    "ORIGINATOR_ID_TYPE": ("stream ids must be stored as uuid, the form the hash chain covers", lambda v: v.lower() != "uuid"),
    "CIPHER_TOPIC": ("tradecore's mapper stores events as plain JSON and would ignore it (no encryption would happen)", bool),
    "CIPHER_KEY": ("tradecore's mapper stores events as plain JSON and would ignore it (no encryption would happen)", bool),
    "COMPRESSOR_TOPIC": ("tradecore's mapper stores events as plain JSON and would ignore it", bool),
    "TRANSCODER_TOPIC": ("tradecore's mapper stores events as plain JSON and would ignore it", bool),
    "MAPPER_TOPIC": ("tradecore's mapper is fixed (events are stored as plain JSON)", bool),
}
# Settings tradecore always sets itself (the URL decides them); a different value in the
# environment is refused too, since it would mean the operator expects another store.
_PINNED_BY_URL = ("PERSISTENCE_MODULE", "APPLICATION_RECORDER_TOPIC", "POSTGRES_SCHEMA", "SQLITE_DBNAME")


def refuse_library_overrides(pinned: dict[str, str], app_name: str, environ: dict[str, str] | None = None) -> None:
    """Raise LibrarySettingRefused when the environment carries an eventsourcing setting that would
    change how rows are written (see REFUSED_LIBRARY_SETTINGS) or contradicts the store URL."""
    environ = os.environ if environ is None else environ
    for name in (*REFUSED_LIBRARY_SETTINGS, *_PINNED_BY_URL):
        for key in (f"{app_name.upper()}_{name}", name):
            value = environ.get(key)
            if value is None or value == "":
                continue
            if name in REFUSED_LIBRARY_SETTINGS:
                why, refused = REFUSED_LIBRARY_SETTINGS[name]
                if refused(value):  # type: ignore[operator]
                    raise LibrarySettingRefused(
                        f"the environment sets {key}={value if 'KEY' not in name else '(set)'}: {why}; "
                        f"unset it (tradecore pins how events are written)"
                    )
            elif name in pinned and value != pinned[name]:
                raise LibrarySettingRefused(
                    f"the environment sets {key}={value}, but the event store URL says {pinned[name]}; "
                    "unset it (the store is chosen by EVENTSTORE__URL / --store only)"
                )


def eventsourcing_env(location: StoreLocation, app_name: str) -> dict[str, str]:
    """The eventsourcing settings for this store (prefixed, so they win over os.environ).

    Every library setting that changes how rows are written is pinned here, and
    a contradicting value in the environment is refused (``refuse_library_overrides``)
    before anything is created.
    """
    prefix = app_name.upper() + "_"
    if location.backend == "sqlite":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": location.sqlite_path if not location.is_memory else "file:tradecore?mode=memory&cache=shared",
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": get_topic(ChainedSQLiteRecorder),
        }
    else:
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
            "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER_TOPIC,
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "POSTGRES_GET_PASSWORD_TOPIC": "",
        }
    env.update(
        {
            "ORIGINATOR_ID_TYPE": "uuid",
            "IS_SNAPSHOTTING_ENABLED": "n",
            "CIPHER_TOPIC": "",
            "CIPHER_KEY": "",
            "COMPRESSOR_TOPIC": "",
            "TRANSCODER_TOPIC": "",
            "MAPPER_TOPIC": "",
            "CREATE_TABLE": "y",
        }
    )
    refuse_library_overrides(env, app_name)
    if location.backend == "sqlite":
        if not location.is_memory:
            prepare_sqlite_file(location.sqlite_path)
    else:
        ensure_postgres_schema(location)
    return {prefix + key: value for key, value in env.items()}
