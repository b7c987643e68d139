"""The projector's SQLite pages read as arrow columns by one aggregate statement (infrastructure/eventstore/
log_columns.py) are the pages read by rows, whatever the log holds; what cannot be read so is read by rows."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from decimal import Decimal as D
from types import SimpleNamespace

import pyarrow as pa
import pytest

from api.bootstrap import open_store
from domain.market import Candle
from infrastructure.eventstore.log_columns import log_columns, statement
from projections.engine.pages import read_page
from tests.conftest import T0


@pytest.fixture
def store(tmp_path, meta):
    """A log of several topics: sub-cent and BTC-quoted candles, incidents with text beyond ASCII."""
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    for i in range(4):
        app.record_candles(
            [Candle("SHIB-USD", "1m", T0 + timedelta(minutes=5 * i + j), D("0.00001234"), D("0.0000125"),
                    D("0.0000121"), D(f"0.0000123{j}"), D("123456789.5")) for j in range(5)]
            + [Candle("ETH-BTC", "5m", T0 + timedelta(minutes=5 * i), D("0.05123"), D("0.0513"), D("0.051"),
                      D("0.05125"), D("12.75"))],
            meta,
        )
        app.open_incident(uuid.UUID(int=i + 1), meta, severity="P3", kind="drill",
                          details=f"Kurs über Limit Δ {i} 🚨")
    yield app
    app.close()


def by_rows(recorder):
    """The recorder without its column read: pages.read_page falls back to select_log_rows."""
    return SimpleNamespace(select_log_rows=recorder.select_log_rows)


def rows_of(recorder, after, limit):
    return [(n, t, bytes(s) if isinstance(s, bytes) else s.encode()) for n, t, s in recorder.select_log_rows(after, limit)]


def columns_of(recorder, after, limit):
    read = recorder.select_log_columns(after, limit)
    assert read is not None
    ids, topics, states = read
    return list(zip(ids.to_pylist(), topics.to_pylist(), (s.encode() for s in states.to_pylist())))


@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
def test_columns_are_the_rows_for_any_page(store, limit):
    recorder = store.recorder
    total = len(recorder.select_log_rows(0, 10**6))
    assert total == 28
    for after in (0, 1, 5, 13, total - 1, total, total + 5):
        assert columns_of(recorder, after, limit) == rows_of(recorder, after, limit)
    # the projector's page is the same table either way
    for after in (0, 6):
        page, rows_page = read_page(recorder, after, limit), read_page(by_rows(recorder), after, limit)
        assert page.table.equals(rows_page.table)
        assert (page.first, page.last, page.counts) == (rows_page.first, rows_page.last, rows_page.counts)
    assert read_page(recorder, total, limit) is None


def tamper(store, tmp_path, sql, params=()):
    with sqlite3.connect(f"{tmp_path}/events.db") as conn:
        conn.execute(sql, params)


@pytest.mark.parametrize("sql, params, by_columns", [
    # a gap in the ids (a row deleted) and a state stored as TEXT beyond ASCII: still read as columns
    ("DELETE FROM stored_events WHERE rowid = 4", (), True),
    ("UPDATE stored_events SET state = ? WHERE rowid = 6", ('{"note": "ünïcode ✓"}',), True),
    # a NULL (no value to join), a topic holding the separator: read by rows
    ("UPDATE stored_events SET state = NULL WHERE rowid = 3", (), False),
    ("UPDATE stored_events SET topic = 'domain.market:Candle\x1fClosed' WHERE rowid = 2", (), False),
])
def test_a_tampered_page_is_read_the_same_either_way(store, tmp_path, sql, params, by_columns):
    tamper(store, tmp_path, sql, params)
    recorder = store.recorder
    assert (recorder.select_log_columns(0, 100) is not None) is by_columns
    page, rows_page = read_page(recorder, 0, 100), read_page(by_rows(recorder), 0, 100)
    assert page.table.equals(rows_page.table)
    assert (page.first, page.last, page.counts) == (rows_page.first, rows_page.last, rows_page.counts)


def test_a_page_with_no_topic_fails_either_way_naming_the_notification(store, tmp_path):
    tamper(store, tmp_path, "UPDATE stored_events SET topic = NULL WHERE rowid = 5")
    assert store.recorder.select_log_columns(0, 100) is None
    for recorder in (store.recorder, by_rows(store.recorder)):
        with pytest.raises(ValueError, match="notification 5 of the log has no topic"):
            read_page(recorder, 0, 100)


def test_a_state_that_is_not_utf8_fails_either_way(store, tmp_path):
    tamper(store, tmp_path, "UPDATE stored_events SET state = X'7bff7d' WHERE rowid = 2")
    for recorder in (store.recorder, by_rows(store.recorder)):
        with pytest.raises(pa.ArrowInvalid):
            read_page(recorder, 0, 100)


def test_a_page_longer_than_sqlites_longest_value_is_read_by_rows(store, tmp_path):
    with sqlite3.connect(f"{tmp_path}/events.db") as conn:
        sql = statement("stored_events")
        assert log_columns(conn.cursor(), sql, 0, 100) is not None
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2000)  # the page's states joined are longer than this
        assert len(b"".join(bytes(r[0]) for r in conn.execute("SELECT state FROM stored_events"))) > 2000
        assert log_columns(conn.cursor(), sql, 0, 100) is None
        assert log_columns(conn.cursor(), sql, 0, 1) is not None  # one state alone still fits
