"""A new SQLite log gets the store's page size before its first table; a log created before keeps its own."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from datetime import timedelta
from decimal import Decimal

from api.bootstrap import open_store
from domain.market import Candle
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import SQLITE_PAGE_SIZE, prepare_sqlite_file
from tests.conftest import T0


def _pragmas(path) -> tuple[int, str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0], conn.execute("PRAGMA journal_mode").fetchone()[0]


def _candles(n: int) -> list[Candle]:
    return [Candle("BTC-USD", "1h", T0 + timedelta(hours=k), Decimal("100.5"), Decimal(1000), Decimal("99.25"),
                   Decimal(100 + k), Decimal("2.5")) for k in range(n)]


def _write_and_verify(path, meta, n: int = 300) -> None:
    app = open_store(f"sqlite:///{path}")
    try:
        assert app.record_candles(_candles(n), meta).recorded == n
        report = verify_chain(app.recorder)
        assert report.ok and report.checked == n
    finally:
        app.close()


def test_a_new_log_has_the_store_page_size_and_the_write_ahead_log(tmp_path, meta):
    path = tmp_path / "new" / "events.db"
    _write_and_verify(path, meta)
    assert SQLITE_PAGE_SIZE != 4096  # SQLite's default: the setting is what made the file
    assert _pragmas(path) == (SQLITE_PAGE_SIZE, "wal")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_file_becomes_a_log_with_the_store_page_size(tmp_path, meta):
    path = tmp_path / "events.db"
    path.touch()
    _write_and_verify(path, meta)
    assert _pragmas(path) == (SQLITE_PAGE_SIZE, "wal")


def test_a_log_created_with_another_page_size_keeps_it_and_its_events(tmp_path, meta):
    path = tmp_path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE other (x)")  # the file's first page is written: its page size is fixed
        conn.commit()
    _write_and_verify(path, meta, 50)
    prepare_sqlite_file(str(path))  # opening it again changes nothing of the file
    assert _pragmas(path)[0] == 4096
    app = open_store(f"sqlite:///{path}")
    try:
        assert app.record_candles(_candles(60), meta).recorded == 10  # the first 50 are there already
        assert verify_chain(app.recorder).checked == 60
    finally:
        app.close()
