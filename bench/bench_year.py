"""A year of 1-minute candles (525,600): imported into a fresh SQLite log, then backtested from it.

The candles are generated (numpy, seed 15): BTC-USD 1m from 2025-01-01 00:00 UTC, a geometric random
walk from 30,000.00 USD with a per-minute volatility of 0.07% and a slow sine drift (trends and ranges,
so the rules strategy trades), each open the previous close, wicks of |N(0, 0.03%)| above and below,
all prices in whole cents; volumes exponential (mean 5 BTC, 8 places). Then, in one process of its
own (so its peak RSS is the run's alone): import_candles records them (timed), and the backtest the
CLI runs is timed: read back from the log, planned, run with the rules strategy, every event persisted.
The generated list is dropped after the import. Peak RSS is
resource.getrusage(RUSAGE_SELF).ru_maxrss of that process at its end (generation, import and backtest
all included; the backtest's own peak is the larger). Targets: backtest <= 20 s, peak RSS <= 1 GiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

MINUTES = 525_600


def generate(count: int = MINUTES, seed: int = 15) -> list:
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    import numpy as np

    from domain.market import Candle

    rng = np.random.default_rng(seed)
    drift = 0.00004 * np.sin(np.arange(count) / 7_000.0)
    close = np.rint(3_000_000 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.0007, count)))).astype(np.int64)  # cents
    open_ = np.concatenate(([3_000_000], close[:-1]))
    wick_up = np.ceil(np.maximum(open_, close) * np.abs(rng.normal(0.0, 0.0003, count))).astype(np.int64)
    wick_down = np.ceil(np.minimum(open_, close) * np.abs(rng.normal(0.0, 0.0003, count))).astype(np.int64)
    high, low = np.maximum(open_, close) + wick_up, np.maximum(np.minimum(open_, close) - wick_down, 1)
    volume = np.rint(rng.exponential(5.0, count) * 1e8).astype(np.int64) + 1
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    minute = timedelta(minutes=1)
    cents = [[Decimal(int(v)).scaleb(-2) for v in column.tolist()] for column in (open_, high, low, close)]
    volumes = [Decimal(int(v)).scaleb(-8) for v in volume.tolist()]
    return [Candle("BTC-USD", "1m", start + i * minute, o, h, lo, c, v)
            for i, (o, h, lo, c, v) in enumerate(zip(*cents, volumes))]


def child() -> dict:
    import gc
    import resource
    import tempfile
    import uuid

    from bench.bench_backtest import backtest_from_log, import_into
    from api.bootstrap import configuration

    began = time.perf_counter()
    candles = generate()
    generated = time.perf_counter() - began
    settings = configuration().load_settings(env={})
    with tempfile.TemporaryDirectory() as tmp:
        imported = import_into(f"sqlite:///{tmp}/year.db", candles)
        del candles  # the backtest reads them back from the log, as the CLI does
        gc.collect()
        seconds, summary, cpu = backtest_from_log(f"sqlite:///{tmp}/year.db", "BTC-USD", "1m", settings, uuid.uuid4())
    return {
        "year_candles": MINUTES,
        "year_generate_seconds": round(generated, 2),
        "year_import_seconds": round(imported, 2),
        "year_backtest_seconds": round(seconds, 2),
        "year_backtest_candles_per_s": round(MINUTES / seconds),
        "year_backtest_cpu_seconds": round(cpu, 2),
        "year_events_persisted": summary.events,
        "year_orders": summary.orders,
        "year_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(timeout: float = 600) -> dict:
    try:
        done = subprocess.run([sys.executable, "-m", "bench.bench_year", "--child"], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"year_error": f"the year's backtest did not finish in {timeout:.0f} s"}
    if done.returncode != 0:
        return {"year_error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(child() if "--child" in sys.argv else run()))
