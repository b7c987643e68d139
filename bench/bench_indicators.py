"""Benchmark: the whole indicator set over 1,000,000 synthetic hourly candles, best of 3.

Also times the live path (``IndicatorState.update``) per candle. Run ``python bench/bench_indicators.py``
for a JSON line; ``run()`` returns the same dict for a benchmark runner.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from domain.indicators.cipher import IndicatorState, compute_indicators

ROWS = 1_000_000
LIVE_ROWS = 20_000
REPEATS = 3


def random_walk_candles(rows: int, seed: int = 7) -> pd.DataFrame:
    """Hourly OHLCV from a geometric random walk (about 1% moves an hour), reproducible by seed."""
    rng = np.random.default_rng(seed)
    close = 10_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, rows)))
    open_ = np.concatenate(([10_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.004, (2, rows)))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + wick[0]),
            "low": np.minimum(open_, close) * (1.0 - wick[1]),
            "close": close,
            "volume": rng.exponential(100.0, rows),
        },
        index=pd.date_range("2015-01-01", periods=rows, freq="h", tz="UTC"),
    )


def _best_of(repeats: int, work) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run() -> dict:
    candles = random_walk_candles(ROWS)
    batch = _best_of(REPEATS, lambda: compute_indicators(candles))

    rows = candles.iloc[:LIVE_ROWS][["open", "high", "low", "close", "volume"]].to_dict("records")

    def feed() -> None:
        state = IndicatorState()
        for row in rows:
            state.update(row)

    live = _best_of(REPEATS, feed)
    return {
        "indicators_1m_candles_seconds": round(batch, 3),
        "indicator_state_update_microseconds": round(live / LIVE_ROWS * 1e6, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
