"""Candles read back from the log as columns (logged_candles) are the candles the events hold, decoded one by
one through the store's mapper: other products and bar sizes left out, the newest correction winning."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from api.bootstrap import open_store
from application.trading.backtest import candles_of
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta
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
