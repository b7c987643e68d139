"""No eventsourcing setting in the environment can change how events are written, and store URLs are strict.

Each library setting that would route writes around the hash chain, store stream
ids in another form, read state from unchained snapshots, or be silently ignored by
tradecore's mapper is refused with one line naming it, before anything is created.
Unknown URL parameters and names PostgreSQL would cut are refused too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.bootstrap import open_store
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import (
    REFUSED_LIBRARY_SETTINGS,
    LibrarySettingRefused,
    StoreURLError,
    parse_store_url,
)
from tests.conftest import PG_DSN, fresh_pg_url, require_postgres

ROOT = Path(__file__).resolve().parents[2]

# A value of each setting that would change how rows are written (or be ignored while trusted).
HARMFUL = {
    "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    "IS_SNAPSHOTTING_ENABLED": "yes",
    "ORIGINATOR_ID_TYPE": "text",
    "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
    "CIPHER_KEY": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
    "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
    "TRANSCODER_TOPIC": "eventsourcing.persistence:JSONTranscoder",
    "MAPPER_TOPIC": "eventsourcing.persistence:Mapper",
    "PERSISTENCE_MODULE": "eventsourcing.popo",
    "APPLICATION_RECORDER_TOPIC": "eventsourcing.sqlite:SQLiteApplicationRecorder",
    "SQLITE_DBNAME": "/tmp/elsewhere.db",
}


def test_every_refused_setting_has_a_test_value():
    assert set(REFUSED_LIBRARY_SETTINGS) <= set(HARMFUL)


@pytest.mark.parametrize("prefix", ["", "TRADECORE_"])
@pytest.mark.parametrize("name", sorted(HARMFUL))
def test_a_setting_that_changes_how_rows_are_written_is_refused_before_anything_is_created(tmp_path, monkeypatch, name, prefix):
    monkeypatch.setenv(prefix + name, HARMFUL[name])
    target = tmp_path / "events.db"
    with pytest.raises(LibrarySettingRefused) as refused:
        open_store(f"sqlite:///{target}")
    message = str(refused.value)
    assert prefix + name in message and "unset it" in message
    assert "c2VjcmV0" not in message  # a key's value is never echoed
    assert not target.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("name", ["POSTGRES_ENABLE_DB_FUNCTIONS", "ORIGINATOR_ID_TYPE", "POSTGRES_SCHEMA"])
def test_postgres_settings_are_refused(monkeypatch, name):
    require_postgres()
    monkeypatch.setenv(name, {"POSTGRES_SCHEMA": "public"}.get(name, HARMFUL.get(name, "")))
    with pytest.raises(LibrarySettingRefused, match=name):
        open_store(fresh_pg_url())


@pytest.mark.postgres
def test_db_functions_from_the_environment_cannot_write_events_without_links(tmp_path):
    """The issue's attack: a backtest with POSTGRES_ENABLE_DB_FUNCTIONS=y writes nothing, says why in one line."""
    require_postgres()
    url = fresh_pg_url()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__"))}
    env["POSTGRES_ENABLE_DB_FUNCTIONS"] = "y"
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-02", "--store", url],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 2, result.stdout
    assert "POSTGRES_ENABLE_DB_FUNCTIONS=y" in result.stderr and "Traceback" not in result.stderr
    import psycopg

    schema = parse_store_url(url).schema
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f'"{schema}".tradecore_events',)).fetchone()[0] is None


@pytest.mark.postgres
def test_the_chained_recorder_refuses_db_functions_even_when_built_around_the_store_url():
    """Belt and braces: configuring the library directly still cannot bypass the chain."""
    require_postgres()
    from eventsourcing.application import Application
    from eventsourcing.utils import get_topic

    from infrastructure.eventstore.chain import ChainedPostgresRecorder

    location = parse_store_url(fresh_pg_url())
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": location.dbname, "POSTGRES_HOST": location.host,
        "POSTGRES_PORT": str(location.port), "POSTGRES_USER": location.user, "POSTGRES_PASSWORD": "",
        "APPLICATION_RECORDER_TOPIC": get_topic(ChainedPostgresRecorder), "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
    }
    with pytest.raises(ValueError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        Application(env=env)


@pytest.mark.parametrize("name, value", [("CREATE_TABLE", "n"), ("SQLITE_LOCK_TIMEOUT", "0"), ("SINGLE_ROW_TRACKING", "n")])
def test_settings_that_only_tune_are_pinned_and_events_still_get_links(tmp_path, monkeypatch, meta, name, value):
    monkeypatch.setenv(name, value)
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        app.operator_halt("drill", "P3", meta) if hasattr(app, "operator_halt") else app.halt_trading("drill", "P3", meta)
        report = verify_chain(app.recorder)
        assert report.ok and report.checked == app.max_notification_id() > 0
    finally:
        app.close()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:hunter2@h/db?shema=x", "unknown URL parameter(s) shema"),
        ("postgresql://u@h/db?schema=a&schema=b", "schema is given 2 times"),
        ("postgresql://u@h/db?schema=" + "s" * 64, "is 64 bytes"),
        ("postgresql://u@h/db?schema=café", "ASCII letters"),
        ("postgresql://u@h/db?schema=", "must be ASCII letters"),
        ("sqlite:///var/events.db?mode=ro", "takes no parameters"),
    ],
)
def test_store_urls_with_unknown_parameters_or_overlong_names_are_refused(url, expected):
    with pytest.raises(StoreURLError) as refused:
        parse_store_url(url)
    assert expected in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_63_byte_schema_is_accepted():
    assert parse_store_url("postgresql://u@h/db?schema=" + "s" * 63).schema == "s" * 63


def test_a_chain_table_name_over_63_bytes_is_refused():
    from infrastructure.eventstore.chain import ChainedPostgresRecorder

    class Datastore:  # the recorder refuses before it touches the datastore
        schema = "public"

    with pytest.raises(ValueError, match="longer than PostgreSQL's 63 bytes"):
        ChainedPostgresRecorder(Datastore(), events_table_name="e" * 58)
