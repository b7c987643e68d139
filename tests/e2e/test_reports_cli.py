"""`tradecore report`, `query` and `--as-of` through the real CLI, and readers while an owner runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "RISK__"))}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=run_env)


def backtested(base, start: str, end: str):
    """A store with a backtest of the bundled candles of [start, end), its read-model env and its folder."""
    store = f"sqlite:///{base}/events.db"
    result = cli("backtest", "--bundled", "--from", start, "--to", end, "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    return store, {"READMODEL__PATH": str(base / "readmodel.duckdb")}, base


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """A store with a backtest of January 2018 and its read-model path."""
    return backtested(tmp_path_factory.mktemp("reports"), "2018-01-01", "2018-01-31")


def test_daily_report_json_has_the_manuals_sections_and_is_written_to_reports(month, tmp_path):
    store, env, _ = month
    result = cli("report", "daily", "--date", "2018-01-16", "--json", "--reports-dir", str(tmp_path), "--store", store, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["date"] == "2018-01-16"
    trading, risk = report["trading_summary"], report["risk_analysis"]
    assert {"trades_executed", "success_rate_pct", "daily_pnl", "current_positions"} <= set(trading)
    assert {"daily_loss_used_pct", "max_daily_loss_pct", "risk_score"} <= set(risk)
    assert risk["risk_level"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL") and 0 <= risk["risk_score"] <= 100
    assert report["day_figures"]["risk_score"] == risk["risk_score"]
    assert report["recommendations"] and all(isinstance(r, str) and r for r in report["recommendations"])
    written = json.loads((tmp_path / "daily_report_20180116.json").read_text())
    assert written["trading_summary"] == trading
    # The report's P&L is the read model's: cross-check with SQL.
    q = cli("query", "SELECT net_pnl, fees FROM pnl_daily WHERE day = DATE '2018-01-16'", "--format", "json", "--store", store, env=env)
    row = json.loads(q.stdout)
    assert trading["fees"] == f"{float(row['fees']):.2f}"


def test_daily_report_for_a_day_without_data_says_so(month):
    store, env, _ = month
    result = cli("report", "daily", "--date", "2016-01-01", "--store", store, env=env)
    assert result.returncode == 1 and "no run has P&L on 2016-01-01" in result.stderr


def test_performance_report_per_day_table(month):
    store, env, _ = month
    result = cli("report", "performance", "--days", "7", "--json", "--store", store, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["days"]) == 7 and report["to"] == "2018-02-01"  # the last candle closes at 00:00 on Feb 1
    assert {"start_equity", "end_equity", "max_drawdown_pct", "win_rate_pct", "fees"} <= set(report)


def test_query_formats(month, tmp_path):
    store, env, _ = month
    as_csv = cli("query", "SELECT count(*) AS n FROM decisions", "--format", "csv", "--store", store, env=env)
    assert as_csv.stdout.splitlines() == ["n", str(31 * 24)]  # one decision per candle of the run
    out = tmp_path / "fills.parquet"
    as_parquet = cli("query", "SELECT * FROM fills ORDER BY notification_id", "--format", "parquet", "--output", str(out), "--store", store, env=env)
    assert as_parquet.returncode == 0, as_parquet.stderr
    table = pq.read_table(out)
    assert table.num_rows > 0 and "fee" in table.column_names


def test_query_refuses_writes_and_changes_nothing(month):
    store, env, _ = month
    before = cli("query", "SELECT count(*) AS n FROM fills", "--format", "json", "--store", store, env=env).stdout
    for statement in ("DELETE FROM fills", "DROP TABLE fills", "UPDATE fills SET fee = 0", "CREATE TABLE x AS SELECT 1"):
        refused = cli("query", statement, "--store", store, env=env)
        assert refused.returncode == 2 and "refused" in refused.stderr, statement
    after = cli("query", "SELECT count(*) AS n FROM fills", "--format", "json", "--store", store, env=env).stdout
    assert before == after and json.loads(after)["n"] > 0


def test_as_of_answers_from_the_log_as_it_stood_without_touching_the_live_model(month):
    store, env, _ = month
    live_before = cli("query", "SELECT min(last_notification_id) AS p FROM projection_tracking", "--format", "json", "--store", store, env=env).stdout
    then = cli("query", "SELECT count(*) AS n FROM decisions", "--as-of", "2018-01-02T00:00:00Z", "--format", "json", "--store", store, env=env)
    assert json.loads(then.stdout)["n"] == 24  # the decisions on the candles that had closed by then
    by_id = cli("query", "SELECT count(*) AS n FROM candles", "--as-of", "3", "--format", "json", "--store", store, env=env)
    assert json.loads(by_id.stdout)["n"] == 3  # the log starts with the imported bundled candles
    live_after = cli("query", "SELECT min(last_notification_id) AS p FROM projection_tracking", "--format", "json", "--store", store, env=env).stdout
    assert live_before == live_after
    bad = cli("query", "SELECT 1", "--as-of", "last week", "--store", store, env=env)
    assert bad.returncode == 2 and "--as-of 'last week'" in bad.stderr


def test_readers_work_while_a_follower_owns_the_read_model(tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    env = {"READMODEL__PATH": str(tmp_path / "rm.duckdb")}
    first = cli("backtest", "--bundled", "--from", "2018-03-01", "--to", "2018-03-02", "--store", store, "--json")
    assert first.returncode == 0, first.stderr
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__"))} | env
    owner = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "project", "--follow", "--snapshot-every", "0.2", "--poll-ms", "50", "--store", store],
        cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        snapshot = tmp_path / "rm.snapshot.duckdb"
        deadline = time.time() + 60
        while not snapshot.exists():
            assert owner.poll() is None, owner.communicate()
            assert time.time() < deadline, "the owner never published a snapshot"
            time.sleep(0.1)
        seen = cli("query", "SELECT count(*) AS n FROM decisions", "--format", "json", "--store", store, env=env)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)["n"] == 48
        more = cli("backtest", "--from", "2018-03-03", "--to", "2018-03-03", "--store", store, "--json")
        assert more.returncode == 0, more.stderr
        deadline, n = time.time() + 30, 0
        while n != 72 and time.time() < deadline:  # the snapshot catches up within seconds
            n = json.loads(cli("query", "SELECT count(*) AS n FROM decisions", "--format", "json", "--store", store, env=env).stdout)["n"]
        assert n == 72
        report = cli("report", "daily", "--json", "--reports-dir", str(tmp_path), "--store", store, env=env)
        assert report.returncode == 0, report.stderr
        assert "snapshot" in json.loads(report.stdout)["source"]
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.communicate(timeout=60)
    assert owner.returncode == 0
