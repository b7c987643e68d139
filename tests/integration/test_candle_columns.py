"""Candles read back from the log as columns (logged_candles) are the candles the events hold, decoded one by
one through the store's mapper: other products and bar sizes left out, the newest correction winning."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from api.bootstrap import open_store
from application.trading.backtest import candles_of
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta, EventValidationError
from domain.market import CandleRecord, candle_id
from infrastructure.candles.files import bundled_candles_path, read_candle_file


def test_columns_read_back_are_the_decoded_events_with_corrections_winning(tmp_path):
    frame = read_candle_file(bundled_candles_path()).frame.iloc[:26_000]
    btc = candles_of(frame, "BTC-USD", "1h")
    eth = candles_of(frame.iloc[:3000], "ETH-USD", "1h")
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        import_candles(store, btc[:12_000], EventMeta(btc[-1].end, actor="import"))
        import_candles(store, eth, EventMeta(btc[-1].end, actor="import"))
        import_candles(store, btc[12_000:], EventMeta(btc[-1].end, actor="import"))
        corrected = [replace(c, close=c.close + D("0.01"), high=c.high + D("0.01")) for c in btc[5:25_000:997]]
        assert import_candles(store, corrected, EventMeta(btc[-1].end, actor="fix"), on_conflict="correct").corrected \
            == len(corrected)
        newest = {c.start: c for c in btc} | {c.start: c for c in corrected}
        decoded = {}
        for logged in store.iter_log():
            e = logged.event
            if type(e).__name__ in ("CandleClosed", "CandleCorrected") and e.product == "BTC-USD":
                decoded[e.start] = (e.open, e.high, e.low, e.close, e.volume)
        read = logged_candles(store, "BTC-USD", "1h").candles
        assert [c.start for c in read] == sorted(newest)
        assert [c.values() for c in read] == [decoded[s] for s in sorted(decoded)] == [newest[s].values() for s in sorted(newest)]
        assert all(c.start.tzinfo is newest[c.start].start.tzinfo for c in read[:10])
        assert logged_candles(store, "ETH-USD", "1h").candles == eth
        assert logged_candles(store, "ETH-USD", "1m").candles == []
    finally:
        store.close()


@pytest.mark.parametrize("row, change, named, value", [
    (0, {"low": D("-1")}, "low (row 0)", "-1"),
    (4321, {"high": D("1")}, "high (row 4321)", "1"),
    (9999, {"volume": D("NaN")}, "volume (row 9999)", "NaN"),
    (777, {"start": datetime(2017, 9, 1, 10, 30, tzinfo=timezone.utc)}, "start (row 777)", "2017-09-01T10:30:00+00:00"),
    (5000, {"start": datetime(2030, 9, 1, 10)}, "start (row 5000)", "2030-09-01 10:00:00"),  # naive
])
def test_one_bad_candle_anywhere_refuses_the_whole_import_naming_field_and_value(tmp_path, row, change, named, value):
    frame = read_candle_file(bundled_candles_path()).frame.iloc[:10_000]
    candles = candles_of(frame, "BTC-USD", "1h")
    candles[row] = replace(candles[row], **change)
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        with pytest.raises(EventValidationError) as refused:
            store.record_candles(candles, EventMeta(candles[-1].end, actor="import"), batch_size=20_000)
        (problem,) = refused.value.problems
        assert problem[0] == named and str(problem[1]) == value
        assert named in str(refused.value)
        assert store.max_notification_id() == 0  # nothing of the batch
    finally:
        store.close()


def test_new_candles_are_stored_as_the_one_event_path_stores_them(tmp_path):
    frame = read_candle_file(bundled_candles_path()).frame.iloc[:3000]
    candles = candles_of(frame, "BTC-USD", "1h")
    meta = EventMeta(candles[-1].end, actor="import")
    columns, events = open_store(f"sqlite:///{tmp_path}/a.db"), open_store(f"sqlite:///{tmp_path}/b.db")
    try:
        columns.record_candles(candles, meta, batch_size=20_000)
        events.record_in_order(CandleRecord.closed_events([(candle_id(c.product, c.granularity, c.start), c)
                                                           for c in candles], meta))
        assert columns.recorder.select_log_rows(0, 10_000) == events.recorder.select_log_rows(0, 10_000)
        assert columns._stored_rows.fallbacks == 0
    finally:
        columns.close()
        events.close()


def test_a_page_in_another_layout_is_decoded_by_the_mapper_to_the_same_candles(tmp_path):
    import json

    from application.trading.candle_history import CANDLE_TOPICS, _page_read

    candles = candles_of(read_candle_file(bundled_candles_path()).frame.iloc[:500], "BTC-USD", "1h")
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        import_candles(store, candles, EventMeta(candles[-1].end, actor="import"))
        rows = store.read_stored(0, 1000, CANDLE_TOPICS)
        spaced = [(nid, topic, json.dumps(json.loads(state)).encode()) for nid, topic, state in rows]  # ", " and ": "
        assert spaced[0][2] != rows[0][2]
        (by_mapper, no_floats), (by_pattern, floats) = (_page_read(store, page, "BTC-USD", "1h") for page in (spaced, rows))
        assert by_mapper == by_pattern == candles
        assert no_floats is None and [list(column) for column in floats] == [
            [float(getattr(c, name)) for c in candles] for name in ("open", "high", "low", "close", "volume")]
    finally:
        store.close()
