"""Replay of one day of 1-minute candles: the timeline and `--verify`, in seconds.

The day (1,440 one-minute candles) is derived deterministically from 24 bundled
Coinbase hourly candles: each hour becomes 60 minutes along a seeded Brownian
bridge from its open to its close, kept inside its high and low. It is recorded
with the real loop (a backtest, rules strategy) into a temporary SQLite store;
then the timeline (read the log, fold the state after every event) and the
verify (re-execute the day into a throwaway store and compare orders and fills)
are timed. Targets: timeline < 1 s, verify < 2 s.
"""

from __future__ import annotations

import gc
import json
import random
import tempfile
import time
import uuid
from datetime import date
from decimal import Decimal

import pandas as pd

from api.bootstrap import bundled_candles, candle_file, configuration, decision_model, loop_settings, open_store, paper_exchange, risk_limits
from api.bootstrap import replay_exchange, scratch_store
from application.trading.backtest import run_backtest
from application.replay.timeline import build_timeline, load_day
from application.replay.verify import verify_day

DAY = date(2019, 1, 21)
CENT = Decimal("0.01")
RUN = uuid.UUID("00000000-0000-4000-8000-0000000be9c4")


def minute_day(seed: int = 7) -> pd.DataFrame:
    """1,441 one-minute candles: the whole of DAY (closes 00:01..24:00) and the minute before it."""
    hourly = candle_file(bundled_candles()[0], "1h").frame
    start = pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(hours=1)
    hours = hourly[(hourly.index >= start) & (hourly.index < start + pd.Timedelta(hours=25))]
    rng = random.Random(seed)
    rows, index = [], []
    for ts, (o, hi, lo, c, v) in zip(hours.index, hours[["open", "high", "low", "close", "volume"]].itertuples(index=False)):
        o, hi, lo, c = float(o), float(hi), float(lo), float(c)
        walk = [0.0]
        for _ in range(60):
            walk.append(walk[-1] + rng.gauss(0, 1))
        span = max(hi - lo, 0.01)
        path = [o + (c - o) * i / 60 + (walk[i] - walk[60] * i / 60) * span * 0.08 for i in range(61)]
        path = [min(max(p, lo), hi) for p in path]
        for m in range(60):
            a, b = path[m], path[m + 1]
            wiggle = span * 0.01 * rng.random()
            rows.append([Decimal(repr(x)).quantize(CENT) for x in (a, min(max(a, b) + wiggle, hi), max(min(a, b) - wiggle, lo), b)]
                        + [(Decimal(v) / 60).quantize(Decimal("0.00000001"))])
            index.append(ts + pd.Timedelta(minutes=m))
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], index=pd.DatetimeIndex(index, name="start"))
    # the minute that closes at DAY 00:00 belongs to DAY (events are dated at the candle's close)
    return frame[frame.index >= pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(minutes=1)].iloc[:1440]


def run(repeats: int = 3) -> dict:
    settings = configuration().load_settings(env={}, overrides={"trading.granularity": "1m"})
    frame = minute_day()
    with tempfile.TemporaryDirectory() as tmp:
        app = open_store(f"sqlite:///{tmp}/replay.db")
        summary = run_backtest(
            app, frame, exchange=paper_exchange(settings, id_prefix=f"paper-{RUN.hex[:8]}"),
            strategy=decision_model(settings), settings=loop_settings(settings, flush_every=500),
            initial_balance=Decimal(10000), config_hash="bench", code_version="bench", run_id=RUN,
        )
        limits = risk_limits(settings)
        timeline_best = verify_best = float("inf")
        rows = compared = 0
        identical = False
        for _ in range(repeats):
            gc.collect()
            t0 = time.perf_counter()
            timeline = build_timeline(load_day(app, DAY), limits)
            timeline_best = min(timeline_best, time.perf_counter() - t0)
            rows = len(timeline.rows)
            gc.collect()
            t0 = time.perf_counter()
            log = load_day(app, DAY)
            store = scratch_store()
            report = verify_day(log, limits, loop_settings(settings, flush_every=10_000),
                                replay_exchange(settings, log), store,
                                lambda: list(store.recorded))
            store.close()
            verify_best = min(verify_best, time.perf_counter() - t0)
            identical, compared = report.identical, report.compared
        app.close()
    return {
        "replay_day_candles": summary.candles,
        "replay_day_orders": summary.orders,
        "replay_day_fills": summary.fills,
        "replay_timeline_events": rows,
        "replay_timeline_s": round(timeline_best, 3),
        "replay_verify_s": round(verify_best, 3),
        "replay_verify_identical": identical,
        "replay_verify_compared_events": compared,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
