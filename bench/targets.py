"""Each figure `make bench` judges: its target and which way is better (issues 15 and earlier).

A figure with no entry here is printed without a verdict (counts, settings, intermediate seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    op: str  # ">=", "<=", "<" or "=="
    value: float
    unit: str
    what: str

    def met(self, measured: Any) -> bool | None:
        if isinstance(measured, bool) or not isinstance(measured, (int, float)):
            return None  # skipped or failed: no verdict
        return {">=": measured >= self.value, "<=": measured <= self.value,
                "<": measured < self.value, "==": measured == self.value}[self.op]


TARGETS: dict[str, Target] = {
    "sqlite_candle_appends_per_s": Target(">=", 50_000, "/s", "SQLite candle appends, batches of 1,000"),
    "sqlite_decodes_per_s": Target(">=", 250_000, "/s", "SQLite events read back and decoded"),
    "postgres_candle_appends_per_s": Target(">=", 25_000, "/s", "PostgreSQL candle appends, batches of 1,000"),
    "postgres_decodes_per_s": Target(">=", 150_000, "/s", "PostgreSQL events read back and decoded"),
    "backtest_candles_per_s": Target(">=", 40_000, "/s", "backtest over the bundled candles in the log, in-process"),
    "backtest_ratio_to_backtesting_py": Target("<=", 3, "x", "backtesting.py candles/s over ours (EMA cross, same candles)"),
    "startup_backtest_bundled_seconds": Target("<=", 1.5, "s", "whole `tradecore backtest --bundled` process, fresh store"),
    "startup_help_seconds": Target("<=", 0.3, "s", "whole `tradecore --help` process"),
    "year_backtest_seconds": Target("<=", 20, "s", "backtest of a year of 1-minute candles (525,600) from the log"),
    "year_peak_rss_mib": Target("<=", 1024, "MiB", "peak RSS of the year's process (generation, import, backtest)"),
    "indicators_1m_candles_seconds": Target("<", 1, "s", "compute_indicators on 1,000,000 candles"),
    "projections_rebuild_events_per_s": Target(">=", 150_000, "/s",
                                               "rebuild of all projections, 1M-event log, pages of readmodel.batch_size"),
    "projection_lag_p99_ms": Target("<", 1000, "ms", "append -> visible in the read model, p99"),
    "replay_timeline_s": Target("<", 1, "s", "replay timeline of a day of 1-minute candles"),
    "replay_verify_s": Target("<", 2, "s", "replay --verify of that day"),
    "backup_events_per_s": Target(">=", 300_000, "/s", "backup of the 1M-event log"),
    "restore_rebuild_seconds": Target("<=", 15, "s", "restore of that backup + full projection rebuild"),
    "api_requests_per_s": Target(">=", 2_000, "/s", "REST API GET /positions + /risk/metrics, loopback"),
    "api_p99_ms": Target("<", 25, "ms", "REST API latency p99"),
    "api_errors": Target("==", 0, "", "REST API errors"),
    # issue 16: 20 bots writing one PostgreSQL log at 100x real time, two read nodes following (bench/bench_fleet.py)
    **{f"fleet_node{k}_{name}": target for k in (1, 2) for name, target in (
        ("lag_p99_ms", Target("<", 1000, "ms", f"read node {k}: append -> visible, p99")),
        ("requests_per_s", Target(">=", 2_000, "/s", f"read node {k}: bot-scoped GETs under the fleet's writes")),
        ("p99_ms", Target("<", 25, "ms", f"read node {k}: REST latency p99 under the fleet's writes")),
        ("errors", Target("==", 0, "", f"read node {k}: REST errors")))},
}
