"""Real Coinbase BTC-USD candles (the bundled file) replayed on a fast grid for the stand-in.

``buy_signal_replay`` finds a window where, after ``warmup`` candles of history,
the rules strategy (incremental indicators, as a paper/live run computes them)
sees a buy signal within the first few live candles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from application.trading.backtest import IncrementalIndicators, candles_of
from domain.market import Candle
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from tests.support.coinbase_standin import relabel

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Replay:
    history: list[Candle]  # what the run warms up on
    live: list[Candle]  # pushed one by one; live[signal] carries the buy signal
    signal: int


@lru_cache(maxsize=4)
def buy_signal_replay(warmup: int = 100, granularity: str = "5m", within: int = 3) -> Replay:
    parsed = read_candle_file(bundled_candles_path(), granularity="1h")
    candles = candles_of(parsed.frame.iloc[:3000], "BTC-USD", "1h")
    for j in range(0, 2000):
        indicators = IncrementalIndicators()
        for k in range(j, j + warmup + within):
            values = indicators.on_candle(candles[k])
            if k >= j + warmup and values.get("buy_signal") and not values.get("warmup"):
                window = relabel(candles[j:j + warmup + 12], START, granularity)
                return Replay(window[:warmup], window[warmup:], k - j - warmup)
    raise AssertionError("no buy signal found in the bundled data")
