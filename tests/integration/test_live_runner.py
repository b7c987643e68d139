"""The live runner in-process against the Coinbase stand-in: late and doubled fills, a dropped socket, a clean stop."""

from __future__ import annotations

import threading
import uuid
import pytest

from application.trading.backtest import IncrementalIndicators
from application.trading.live_runner import LiveRunner
from application.trading.loop import LoopSettings
from domain.control import RunMode
from domain.strategy_rules import RulesStrategy
from infrastructure.clock import RandomIds, SystemClock
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.errors import RetryPolicy
from infrastructure.venues.coinbase.execution import CoinbaseGateway
from infrastructure.venues.coinbase.market_data import CandleStream, history
from tests.support.coinbase_standin import CoinbaseStandIn, wait_for
from tests.support.market_replay import buy_signal_replay


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, granularity="5m", heartbeat_every=0.1).start()
    s.replay = buy_signal_replay()
    s.set_history(s.replay.history)
    yield s
    s.stop()


def kinds(app, run_id=None) -> list[str]:
    return [type(e.event).__name__ for e in app.iter_log() if run_id is None or e.event.run_id == run_id]


def test_late_and_doubled_fills_and_a_dropped_socket_are_handled_and_the_run_ends_cleanly(app, stand):
    def client(keys: bool) -> CoinbaseClient:
        key, secret = (stand.api_key, stand.api_secret) if keys else (None, None)
        return CoinbaseClient(key, secret, base_url=stand.base_url, ca_bundle=stand.ca_file,
                              retry=RetryPolicy(attempts=3, initial_wait=0.01))

    market = client(False)
    gateway = CoinbaseGateway(client(True), fill_wait=0.1, poll_every=0.02)
    feed = CandleStream(market, "BTC-USD", "5m", ws_url=stand.ws_url, stale_after=1.0, reconnect_wait=0.05,
                        rest_interval=0.01)
    run_id = uuid.uuid4()
    runner = LiveRunner(
        app, mode=RunMode.LIVE, exchange=gateway, venue=gateway, candles=feed,
        history=lambda: history(market, "BTC-USD", "5m", 100, market.server_time()),
        strategy=RulesStrategy(), indicators=IncrementalIndicators(), settings=LoopSettings("BTC-USD", "5m"),
        clock=SystemClock(), ids=RandomIds(), config_hash="test", code_version="test", run_id=run_id,
        tick_seconds=0.05,
    )
    stand.knobs.fill_market = "late"
    stand.knobs.duplicate_fills = True
    stop = threading.Event()
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("report", runner.run(stop)), daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(m.get("channel") == "candles" for m in stand.subscriptions), timeout=15, what="subscribe")
        live, signal = stand.replay.live, stand.replay.signal
        for candle in live[: signal + 2]:
            stand.trade(candle)
            if candle is not live[0]:
                wait_for(lambda: kinds(app, run_id).count("CandleClosed") >= live.index(candle), timeout=10,
                         what="the previous candle stepped")
        wait_for(lambda: "OrderAccepted" in kinds(app), timeout=10, what="the order accepted")
        assert "OrderFilled" not in kinds(app)  # the venue has not filled it yet
        stand.release_fills()  # the fill arrives late, between candles, and is listed twice
        wait_for(lambda: "OrderFilled" in kinds(app), timeout=10, what="the late fill recorded by a tick poll")

        stepped = kinds(app, run_id).count("CandleClosed")
        stand.trade(live[signal + 2], updates=2)  # closes live[signal + 1]
        stand.drop_websockets()  # mid-candle
        for candle in live[signal + 3: signal + 6]:
            stand.advance_silently(candle)
        wait_for(lambda: kinds(app, run_id).count("CandleClosed") >= stepped + 4, timeout=15,
                 what="the missed candles backfilled and stepped")
    finally:
        stop.set()
        thread.join(timeout=20)
    report = outcome["report"]
    assert report.status == "stopped"
    log = kinds(app)
    placed = [e.event for e in app.iter_log() if type(e.event).__name__ == "OrderPlaced"]
    assert stand.order_count() == len(placed)  # one venue order per order, whatever the replay decided after
    entry = placed[0]
    entry_fills = [e.event for e in app.iter_log() if type(e.event).__name__ in ("OrderFilled", "OrderPartiallyFilled")
                   and e.event.originator_id == entry.originator_id]
    assert len(entry_fills) == 1 and entry_fills[0].quantity == entry.quantity  # listed twice, recorded once
    assert log[-1] == "RunEnded"
    starts = [e.event.start for e in app.iter_log() if type(e.event).__name__ == "CandleClosed" and e.event.run_id == run_id]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    expected = [c.start for c in live[: signal + 5]]
    assert [s for s in starts if s >= live[0].start] == expected  # every bucket, in order, none twice
    assert feed.stats.reconnects >= 1
    venue_btc = stand.balances["BTC"]
    assert runner.loop.portfolio.position("BTC-USD").quantity == venue_btc  # the loop's book agrees with the venue
