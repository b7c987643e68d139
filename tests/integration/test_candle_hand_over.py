"""An import hands the series it completed to the next logged_candles of it in the same process (no decoding
back from the log), and only when the log holds nothing since but the imported candles: the series read is
always what a fresh read of the log gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal as D

import pytest

from api.bootstrap import open_store
from application.trading import candle_history
from application.trading.backtest import candles_of
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file


@pytest.fixture(scope="module")
def candles():
    return candles_of(read_candle_file(bundled_candles_path()).frame.iloc[:3000], "BTC-USD", "1h")


def _as_text(series):
    return [(c.product, c.granularity, c.start.isoformat(), *map(str, c.values())) for c in series]


def _fresh_read(url: str, product: str = "BTC-USD"):
    other = open_store(url)  # another store object: nothing handed over to it
    try:
        return logged_candles(other, product, "1h").candles
    finally:
        other.close()


def test_the_series_handed_over_is_the_one_the_log_holds(tmp_path, candles):
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    try:
        import_candles(store, candles[1000:2000], EventMeta(candles[-1].end, actor="import"))
        # a second import over and around the first: the candles the log lacked are added, in order
        import_candles(store, candles[:1000] + candles[1500:2500], EventMeta(candles[-1].end, actor="import"))
        assert candle_history._IMPORTED[store]
        handed = logged_candles(store, "BTC-USD", "1h").candles
        assert not candle_history._IMPORTED[store]  # taken once
        assert _as_text(handed) == _as_text(_fresh_read(url)) == _as_text(candles[:2500])
        assert [c.start.tzinfo for c in handed[:3]] == [c.start.tzinfo for c in _fresh_read(url)[:3]]
        assert logged_candles(store, "BTC-USD", "1h").candles == handed  # the next read is a read of the log
    finally:
        store.close()


def test_candles_another_writer_records_after_the_import_are_read(tmp_path, candles):
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    try:
        import_candles(store, candles[:2000], EventMeta(candles[-1].end, actor="import"))
        _record_elsewhere(url, [candles[2500], replace(candles[10], close=candles[10].close + D("0.01"),
                                                        high=candles[10].high + D("0.01"))], correct=True)
        read = logged_candles(store, "BTC-USD", "1h").candles
        assert _as_text(read) == _as_text(_fresh_read(url))
        assert len(read) == 2001 and read[10].close == candles[10].close + D("0.01")
    finally:
        store.close()


def test_no_hand_over_when_another_writer_wrote_during_the_import(tmp_path, candles, monkeypatch):
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    record = store.record_candles

    def record_and_another_writer_too(batch, *args, **kwargs):
        done = record(batch, *args, **kwargs)
        _record_elsewhere(url, [replace(candles[0], start=candles[0].start - timedelta(hours=1))])
        return done

    monkeypatch.setattr(store, "record_candles", record_and_another_writer_too)
    try:
        import_candles(store, candles[:2000], EventMeta(candles[-1].end, actor="import"))
        assert not candle_history._IMPORTED.get(store)
        read = logged_candles(store, "BTC-USD", "1h").candles
        assert len(read) == 2001 and read[0].start == candles[0].start - timedelta(hours=1)
        assert _as_text(read) == _as_text(_fresh_read(url))
    finally:
        store.close()


def test_an_import_of_candles_of_several_series_hands_nothing_over(tmp_path, candles):
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    try:
        mixed = candles[:100] + [replace(c, product="ETH-USD") for c in candles[100:200]]
        import_candles(store, mixed, EventMeta(candles[-1].end, actor="import"))
        assert not candle_history._IMPORTED.get(store)
        assert _as_text(logged_candles(store, "BTC-USD", "1h").candles) == _as_text(candles[:100])
    finally:
        store.close()


def _record_elsewhere(url: str, candles, correct: bool = False) -> None:
    other = open_store(url)
    try:
        other.record_candles(candles, EventMeta(candles[0].end, actor="other"),
                             on_conflict="correct" if correct else "refuse")
    finally:
        other.close()
