"""The full event-sourced backtest of the bundled 20,111 Coinbase candles, every event persisted to SQLite."""

from __future__ import annotations

import gc
import json
import tempfile
import time
import uuid
from decimal import Decimal

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings


def run(repeats: int = 3) -> dict:
    frame = read_candle_file(bundled_candles_path()).frame
    settings = load_settings(env={})
    best = float("inf")
    events = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            app = open_store(f"sqlite:///{tmp}/bt.db")
            gc.collect()
            start = time.perf_counter()
            summary = run_backtest(
                app, frame, exchange=paper_exchange(settings), strategy=decision_model(settings),
                settings=loop_settings(settings, flush_every=500), initial_balance=Decimal(10000),
                config_hash="bench", code_version="bench", run_id=uuid.uuid4(),
            )
            best = min(best, time.perf_counter() - start)
            events = summary.events
            app.close()
    return {
        "backtest_bundled_candles": len(frame),
        "backtest_events_persisted": events,
        "backtest_candles_per_s": round(len(frame) / best),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
