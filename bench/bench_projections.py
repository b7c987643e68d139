"""Projector benchmarks: a full rebuild of every projection over a >= 1M-event log, and append->visible lag.

The log is built once into a temporary SQLite store with the real application:
full event-sourced backtests of the bundled 20,111 Coinbase hourly candles
(relabelled as different products so the candles are new each time: candles,
decisions with their inputs, risk verdicts, orders, fills, halts, runs), topped
up with synthetic candles through ``record_candles`` until the log holds
``target_events``; a few config changes and incidents are added so every
projection has work.

Timed: a full rebuild (open, rebuild, close) of the six core projections
(candles, decisions, orders, config, control, runs: set-based SQL) and of the
three money projections alone (positions, pnl and risk_usage, which book fills
in Python; with their apply seconds: at one position they apply a page as one
walk, so the three figures are that walk's), both in pages of 20,000; and of
all projections in pages of 20,000 and in pages of the default
``readmodel.batch_size`` (50,000: what ``tradecore project --rebuild``, a
restore's rebuild and a catch-up use). The rebuild figure judged against its
target (``projections_rebuild_events_per_s``) is the one at the default page
size; the others are its breakdown. Beside each rebuild's seconds, its CPU
seconds (``..._rebuild_cpu_seconds...``: every thread of the process, DuckDB's
included): how far the wall is from what the two cores allow.

Set TRADECORE_BENCH_LOG=/path/events.db to reuse a log built earlier (it is
built there when missing); the lag run then appends to a small log of its own,
so the reused log stays as it was.

The lag run appends 1,000 events/s (10 candles every 10 ms, each batch one
transaction) from a writer thread while ``follow`` runs in another thread with
its own store connection, and measures, per batch, the time from the append's
return to the page that contains it being committed in DuckDB, and the CPU
the projector spent per page (all its threads, its idle polls included: the
process's CPU less the writer thread's).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from api import bootstrap
from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner

PRODUCTS = ("BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "XRP-USD", "DOT-USD", "LTC-USD", "AVAX-USD",
            "LINK-USD", "ATOM-USD", "DOGE-USD", "UNI-USD", "BCH-USD", "ETC-USD", "XLM-USD", "FIL-USD")


def synthetic_candles(product: str, start: datetime, count: int) -> list[Candle]:
    """Deterministic random-walk hourly candles."""
    price = Decimal("100.00")
    out = []
    for i in range(count):
        step = Decimal((i * 7919) % 200 - 100) / Decimal(1000)
        close = max(Decimal("1.00"), price + step)
        high, low = max(price, close) + Decimal("0.05"), min(price, close) - Decimal("0.05")
        out.append(Candle(product, "1h", start + timedelta(hours=i), price, high, max(low, Decimal("0.5")), close,
                          Decimal(1000 + i % 97)))
        price = close
    return out


def build_log(url: str, target_events: int = 1_000_000, backtests: int = 12) -> dict:
    """Fill the store at ``url`` with a realistic mix of at least ``target_events`` events."""
    frame = read_candle_file(bundled_candles_path()).frame
    settings = load_settings(env={})
    app = open_store(url)
    try:
        for i in range(backtests):
            run_backtest(
                app, frame, exchange=paper_exchange(settings, id_prefix=f"bench{i}"), strategy=decision_model(settings),
                settings=loop_settings(settings, product=PRODUCTS[i % len(PRODUCTS)], flush_every=500),
                initial_balance=Decimal(10000), config_hash="bench", code_version="bench",
                run_id=uuid.UUID(int=i + 1),
            )
        meta = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), actor="operator:bench")
        app.set_config_baseline({"risk.max_daily_loss_pct": "5", "llm.api_key": "set:ab12"}, "h0", meta, reason="bench")
        for j in range(20):
            app.change_config("risk.max_daily_loss_pct", str(5 + j % 3), "bench", f"h{j + 1}", meta)
            app.open_incident(uuid.UUID(int=10_000 + j), meta, severity="P2", kind="bench", details="bench incident")
            app.resolve_incident(uuid.UUID(int=10_000 + j), "fixed", meta)
        backtested = app.max_notification_id()
        missing = target_events - backtested
        start = datetime(2030, 1, 1, tzinfo=timezone.utc)
        n = 0
        while missing > 0:
            count = min(missing, 200_000)
            app.record_candles(synthetic_candles(f"SYN{n}-USD", start, count), EventMeta(start, actor="market"))
            missing -= count
            n += 1
        total = app.max_notification_id()
    finally:
        app.close()
    return {"events": total, "backtest_events": backtested, "synthetic_candle_events": total - backtested}


CORE = ("candles", "decisions", "orders", "config", "control", "runs")
MONEY = ("positions", "pnl", "risk_usage")


def time_rebuild(url: str, readmodel: Path, batch_size: int, projections=runner.ALL_PROJECTIONS,
                 report: runner.CatchUpReport | None = None, cpu: list[float] | None = None) -> tuple[float, int]:
    """Seconds for a full rebuild (closing the file, so its checkpoint counts too) and events read; the CPU
    seconds of the process meanwhile (every thread's, DuckDB's included) are appended to ``cpu`` if given."""
    readmodel.unlink(missing_ok=True)
    app = open_store(url)
    try:
        gc.collect()
        began, cpu_began = time.perf_counter(), time.process_time()
        con = bootstrap.readmodel(path=readmodel)
        read = runner.rebuild(app, con, projections, batch_size, report=report)
        con.close()
        seconds = time.perf_counter() - began
        if cpu is not None:
            cpu.append(time.process_time() - cpu_began)
        return seconds, read
    finally:
        app.close()


def measure_lag(url: str, readmodel: Path, seconds: float = 10.0, rate: int = 1000, poll_ms: int = 100) -> dict:
    """p50/p99 ms from an append returning to its page being committed in DuckDB."""
    writer_app, reader_app = open_store(url), open_store(url)
    con = bootstrap.readmodel(path=readmodel)
    runner.catch_up(reader_app, con, runner.ALL_PROJECTIONS, 5000)  # start level with the log
    appended: list[tuple[int, float]] = []  # (last notification id of a batch, when its append returned)
    visible: list[tuple[int, float]] = []  # (position committed, when)
    stop = threading.Event()
    follower = threading.Thread(
        target=runner.follow,
        args=(reader_app, con, runner.ALL_PROJECTIONS, 5000),
        kwargs={"poll_ms": poll_ms, "stop": stop, "on_page": lambda pos: visible.append((pos, time.perf_counter()))},
    )
    # the projector's CPU: the process's, less this (the writer's) thread's
    cpu_began, writer_began = time.process_time(), time.thread_time()
    follower.start()
    per_tick, tick = 10, 10 / rate
    start = datetime(2040, 1, 1, tzinfo=timezone.utc)
    candles = synthetic_candles("LAG-USD", start, int(seconds * rate) + per_tick)
    meta = EventMeta(start, actor="market")
    began = time.perf_counter()
    i = 0
    while i + per_tick <= len(candles) and time.perf_counter() - began < seconds:
        writer_app.record_candles(candles[i : i + per_tick], meta)
        appended.append((writer_app.max_notification_id(), time.perf_counter()))
        i += per_tick
        next_at = began + (i // per_tick) * tick
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    wrote = time.perf_counter() - began
    deadline = time.perf_counter() + 30
    while (not visible or visible[-1][0] < appended[-1][0]) and time.perf_counter() < deadline:
        time.sleep(0.01)
    stop.set()
    follower.join()
    projector_cpu = (time.process_time() - cpu_began) - (time.thread_time() - writer_began)
    con.close()
    writer_app.close()
    reader_app.close()
    lags, v = [], 0
    for nid, at in appended:
        while visible[v][0] < nid:
            v += 1
        lags.append((visible[v][1] - at) * 1000)
    lags.sort()
    return {
        # what one small page costs the projector's thread (issue 16: a read node follows 20 bots' writes)
        "projection_follow_cpu_ms_per_page": round(projector_cpu * 1000 / max(len(visible), 1), 1),
        "projection_follow_events_per_page": round(i / max(len(visible), 1), 1),
        "projection_lag_p50_ms": round(statistics.median(lags), 1),
        "projection_lag_p99_ms": round(lags[int(len(lags) * 0.99) - 1], 1),
        "projection_lag_load_events_per_s": round(i / wrote),
        "projection_lag_poll_ms": poll_ms,
    }


def run(target_events: int = 1_000_000) -> dict:
    figures: dict = {}
    core = runner.by_name(CORE)
    with tempfile.TemporaryDirectory() as tmp:
        reused = os.environ.get("TRADECORE_BENCH_LOG")
        path = Path(reused or f"{tmp}/events.db")
        url = f"sqlite:///{path}"
        if not path.exists() or path.stat().st_size == 0:
            print("building the log ...", file=sys.stderr, flush=True)
            built = build_log(url, target_events)
            figures["projections_log_backtest_events"] = built["backtest_events"]
            figures["projections_log_synthetic_candle_events"] = built["synthetic_candle_events"]
        app = open_store(url)
        try:
            total = app.max_notification_id()
        finally:
            app.close()
        figures["projections_log_events"] = total
        # (pages of 5,000 were measured too before issue 15; dropped to keep `make bench` well under 15 minutes)
        default = load_settings(env={}).readmodel.batch_size
        figures["projections_rebuild_default_batch_size"] = default
        runs = (("core_", core, 20000), ("money_", runner.by_name(MONEY), 20000),
                ("", runner.ALL_PROJECTIONS, 20000), ("", runner.ALL_PROJECTIONS, default))
        for label, projections, batch in runs:
            print(f"rebuilding {label or 'all_'}projections, pages of {batch} ...", file=sys.stderr, flush=True)
            report, cpu = runner.CatchUpReport(), []
            seconds, read = time_rebuild(url, Path(tmp) / "rebuild.duckdb", batch, projections, report, cpu)
            suffix = "" if batch == 5000 else f"_batch{batch}"
            figures[f"projections_{label}rebuild_events_per_s{suffix}"] = round(read / seconds)
            figures[f"projections_{label}rebuild_seconds{suffix}"] = round(seconds, 2)
            # breakdown: CPU of the whole process (on 2 cores the wall can be at best about half of it)
            figures[f"projections_{label}rebuild_cpu_seconds{suffix}"] = round(cpu[0], 2)
            if not label and batch == default:  # the judged figure: the rebuild an operator runs
                figures["projections_rebuild_events_per_s"] = round(read / seconds)
            if label == "money_":  # each one's apply time (one walk at one position: the same figure)
                for name in MONEY:
                    figures[f"projections_{name}_apply_seconds{suffix}"] = round(report.projections[name].seconds, 2)
        print("measuring lag ...", file=sys.stderr, flush=True)  # on the all-projections file, level with the log
        if reused:  # (appending would change the reused log)
            figures.update(measure_lag(f"sqlite:///{tmp}/lag.db", Path(tmp) / "lag.duckdb"))
        else:
            figures.update(measure_lag(url, Path(tmp) / "rebuild.duckdb"))
    figures["projections_core"] = ",".join(CORE)
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
