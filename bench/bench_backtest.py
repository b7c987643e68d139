"""The event-sourced backtest over the bundled 20,111 Coinbase candles in the log, beside backtesting.py.

Ours: the bundled candles are imported into a fresh SQLite log (untimed; `tradecore backtest --bundled`
does the same first), then the path `tradecore backtest` takes is timed: the candles read back from the
log (logged_candles), planned with the indicators' warm-up (plan_backtest) and run with the rules
strategy (run_planned_backtest), every decision, risk verdict, order and fill validated and persisted
(WAL, synchronous as configured; the quiet candles' HOLDs and the entries refused while halted validated per
column, in transactions of 25,000 candles: application/trading/quiet_candles.py). Median of 3, each into a
fresh log; ``backtest_candles_per_cpu_s`` is the same runs by this process's CPU seconds (steadier than the
wall clock on a shared machine).

backtesting.py (the `bench` extra): an EMA(12)/EMA(26) cross over the same candles as floats, long only
(buy on the fast crossing above, close on it crossing below), 0.1% commission; ``Backtest.run`` timed,
median of 3. The ratio is its candles/s over ours (target <= 3). It keeps nothing: no log, no audit trail.

Breakdown (no targets; medians of the same runs, CPU seconds): ``backtest_read_cpu_seconds`` reading the candles
back (logged_candles), ``backtest_run_cpu_seconds`` the rest of the timed path (plan, indicators, loop, writes),
``backtest_close_cpu_seconds`` closing the store after it, untimed (SQLite copies the write-ahead log into the
database file there when no commit of the run has done so yet).
"""

from __future__ import annotations

import gc
import json
import statistics
import tempfile
import time
import uuid
from decimal import Decimal

from api.bootstrap import bundled_candles, candle_file, configuration, decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import candles_of, plan_backtest, run_planned_backtest
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta


def import_into(url: str, candles: list) -> float:
    """Record ``candles`` in the log at ``url`` as `tradecore data import` does; its seconds."""
    app = open_store(url)
    try:
        began = time.perf_counter()
        import_candles(app, candles, EventMeta(candles[-1].end, actor="import"))
        return time.perf_counter() - began
    finally:
        app.close()


def backtest_from_log(url: str, product: str, granularity: str, settings, run_id: uuid.UUID,
                      parts: dict | None = None) -> tuple[float, object, float]:
    """The timed path of `tradecore backtest`: read the candles back from the log, plan, run;
    (wall seconds, summary, CPU seconds of this process: on a shared machine the wall also waits for a core).
    ``parts`` (when given) gets the CPU seconds of reading (``read``), of the rest (``run``) and of closing the
    store afterwards (``close``, untimed)."""
    app = open_store(url)
    closed = False
    try:
        gc.collect()
        began, cpu = time.perf_counter(), time.process_time()
        logged = logged_candles(app, product, granularity)
        read = time.process_time() - cpu
        plan = plan_backtest(logged, None, None, settings.data.indicator_warmup)
        summary = run_planned_backtest(
            app, plan, exchange=paper_exchange(settings), strategy=decision_model(settings),
            settings=loop_settings(settings, product=product, granularity=granularity, flush_every=500),
            initial_balance=Decimal(10000), config_hash="bench", code_version="bench", run_id=run_id)
        seconds, used = time.perf_counter() - began, time.process_time() - cpu
        if parts is not None:
            closing = time.process_time()
            app.close()
            closed = True
            parts.update(read=read, run=used - read, close=time.process_time() - closing)
        return seconds, summary, used
    finally:
        if not closed:
            app.close()


def backtesting_py_candles_per_s(frame, repeats: int = 3) -> float | str:
    """backtesting.py's EMA cross over the same candles: candles/s, median of ``repeats``."""
    try:
        import warnings

        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        return "skipped: backtesting.py is not installed (pip install -e '.[bench]')"

    def ema(values, span):
        return pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy()

    class EmaCross(Strategy):
        def init(self):
            self.fast = self.I(ema, self.data.Close, 12)
            self.slow = self.I(ema, self.data.Close, 26)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    data = pd.DataFrame({name.capitalize(): frame[name].astype(float).to_numpy() for name in ("open", "high", "low", "close", "volume")},
                        index=frame.index.tz_convert(None))
    times = []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = Backtest(data, EmaCross, cash=1_000_000, commission=0.001, finalize_trades=True)
            gc.collect()
            began = time.perf_counter()
            stats = bt.run()
            times.append(time.perf_counter() - began)
    assert stats["# Trades"] > 0
    return len(data) / statistics.median(times)


def run(repeats: int = 3) -> dict:
    frame = candle_file(bundled_candles()[0], "1h").frame
    candles = candles_of(frame, "BTC-USD", "1h")
    settings = configuration().load_settings(env={})
    runs, imports, cpus, parts = [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            imports.append(import_into(f"sqlite:///{tmp}/bt.db", candles))
            parts.append({})
            seconds, summary, cpu = backtest_from_log(f"sqlite:///{tmp}/bt.db", "BTC-USD", "1h", settings, uuid.uuid4(),
                                                      parts[-1])
            runs.append(seconds)
            cpus.append(cpu)
    ours = len(candles) / statistics.median(runs)
    theirs = backtesting_py_candles_per_s(frame, repeats)
    figures = {
        "backtest_bundled_candles": len(candles),
        "backtest_events_persisted": summary.events,
        "backtest_seconds_runs": [round(s, 3) for s in runs],
        "backtest_candles_per_s": round(ours),
        "backtest_candles_per_cpu_s": round(len(candles) / statistics.median(cpus)),
        **{f"backtest_{part}_cpu_seconds": round(statistics.median(p[part] for p in parts), 3)
           for part in ("read", "run", "close")},
        "backtest_import_candles_per_s": round(len(candles) / statistics.median(imports)),
        "backtesting_py_ema_cross_candles_per_s": round(theirs) if isinstance(theirs, float) else theirs,
    }
    if isinstance(theirs, float):
        figures["backtest_ratio_to_backtesting_py"] = round(theirs / ours, 2)
    return figures


if __name__ == "__main__":
    print(json.dumps(run()))
