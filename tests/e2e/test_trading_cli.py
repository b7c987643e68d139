"""`tradecore data import`, `backtest` and `demo` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "TRADING__", "RISK__"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


CSV = """time,open,high,low,close,VolumeFrom
2024-01-01T02:00:00Z,101,106,100,105,3
2024-01-01T00:00:00Z,100,110,90,105,3.5
2024-01-01T01:00:00Z,105,108,95,101,2
2024-01-01T03:00:00Z,105,100,101,104,1
2024-01-01T05:00:00Z,104,109,103,108,0
"""


def test_import_reports_rows_rejects_by_line_and_reimport_changes_nothing(tmp_path):
    file = tmp_path / "candles.csv"
    file.write_text(CSV)
    store = f"sqlite:///{tmp_path}/events.db"
    first = cli("data", "import", str(file), "--product", "BTC-USD", "--granularity", "1h", "--columns", "volume=VolumeFrom", "--store", store)
    assert first.returncode == 1, first.stderr  # one bad row
    out = " ".join(first.stdout.split())
    assert "rejected line 5: high" in out
    assert "4 imported" in out and "1 rejected" in out and "gap" in out
    events = cli("events", "--store", store, "--json", "--limit", "100")
    starts = [json.loads(line)["payload"]["start"] for line in events.stdout.splitlines()]
    assert starts == sorted(starts) and len(starts) == 4
    second = cli("data", "import", str(file), "--columns", "volume=VolumeFrom", "--store", store)
    assert "0 imported" in " ".join(second.stdout.split()) and "4 duplicates skipped" in " ".join(second.stdout.split())
    again = cli("events", "--store", store, "--json", "--limit", "100")
    assert again.stdout == events.stdout


def test_import_of_a_differing_candle_is_refused_or_corrected_on_request(tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    a = tmp_path / "a.csv"
    a.write_text("time,open,high,low,close,volume\n2024-01-01T00:00:00Z,100,110,90,105,3\n")
    b = tmp_path / "b.csv"
    b.write_text("time,open,high,low,close,volume\n2024-01-01T00:00:00Z,100,110,90,106,3\n")
    cli("data", "import", str(a), "--store", store)
    refused = cli("data", "import", str(b), "--store", store)
    assert refused.returncode == 1 and "close recorded 105 offered 106" in " ".join(refused.stdout.split())
    corrected = cli("data", "import", str(b), "--corrections", "--store", store)
    assert corrected.returncode == 0 and "1 corrected" in corrected.stdout
    types = [json.loads(l)["type"] for l in cli("events", "--store", store, "--json").stdout.splitlines()]
    assert types == ["CandleClosed", "CandleCorrected"]


def test_import_with_missing_column_names_it(tmp_path):
    file = tmp_path / "bad.csv"
    file.write_text("time,open,high,low\n2024-01-01T00:00:00Z,1,2,1\n")
    result = cli("data", "import", str(file), "--store", f"sqlite:///{tmp_path}/e.db")
    assert result.returncode == 2 and "close" in result.stderr


def test_backtest_on_bundled_month_prints_summary_and_names_store(tmp_path):
    store = f"sqlite:///{tmp_path}/bt.db"
    result = cli("backtest", "--bundled", "--product", "BTC-USD", "--granularity", "1h", "--from", "2018-01-01",
                 "--to", "2018-01-31", "--strategy", "rules", "--initial-balance", "10000", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["candles"] == 31 * 24
    assert summary["store"] == store
    assert {"trades", "win_rate_pct", "realized_pnl", "fees", "max_drawdown_pct", "final_equity"} <= set(summary)
    verify = cli("audit", "verify", "--store", store)
    assert verify.returncode == 0
    started = [json.loads(l) for l in cli("events", "--store", store, "--type", "RunStarted", "--json").stdout.splitlines()]
    assert started[0]["payload"]["mode"] == "backtest" and len(started[0]["payload"]["config_hash"]) == 64


def test_backtest_table_output(tmp_path):
    result = cli("backtest", "--bundled", "--from", "2019-03-01", "--to", "2019-03-03", "--store", f"sqlite:///{tmp_path}/bt.db")
    assert result.returncode == 0, result.stderr
    assert "final equity" in result.stdout and "events written to sqlite:///" in result.stdout


def test_backtest_refuses_bad_input_clearly(tmp_path):
    store = f"sqlite:///{tmp_path}/bt.db"
    empty = cli("backtest", "--from", "2030-01-01", "--store", store)
    assert empty.returncode == 2 and "the log holds no BTC-USD 1h candles" in empty.stderr
    assert "data import" in empty.stderr and "--bundled" in empty.stderr and "Traceback" not in empty.stderr
    later = cli("backtest", "--bundled", "--from", "2030-01-01", "--store", store)
    assert later.returncode == 2 and "no BTC-USD 1h candles between 2030-01-01" in later.stderr
    assert "the log holds 20,111 BTC-USD 1h candles from 2017-07-01" in later.stderr
    assert [l for l in later.stderr.splitlines() if l.startswith("error:")] == [later.stderr.splitlines()[-1]]
    bad_date = cli("backtest", "--from", "last tuesday", "--store", store)
    assert bad_date.returncode == 2 and "--from 'last tuesday'" in bad_date.stderr
    no_key = cli("backtest", "--strategy", "llm", "--store", store)
    assert no_key.returncode == 2 and "LLM__API_KEY" in no_key.stderr
    other = cli("backtest", "--product", "ETH-USD", "--store", store)
    assert other.returncode == 2 and "the log holds no ETH-USD 1h candles" in other.stderr and "data fetch" in other.stderr
    runs = cli("events", "--store", store, "--type", "RunStarted", "--json")
    assert runs.stdout.strip() == ""  # a refused backtest records no run


def test_demo_runs_the_bundled_backtest_into_a_fresh_store(tmp_path):
    result = cli("demo", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "20,111" in result.stdout and "final equity" in result.stdout
    assert (tmp_path / "demo" / "events.db").exists()


def test_recorded_config_change_reaches_the_backtest(tmp_path):
    store = f"sqlite:///{tmp_path}/bt.db"
    changed = cli("config", "set", "risk.max_position_size_pct", "10", "--reason", "smaller bets", "--store", store)
    assert changed.returncode == 0, changed.stderr
    result = cli("backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-31", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(l)["payload"] for l in cli("events", "--store", store, "--type", "RiskAssessed", "--json", "--limit", "1000").stdout.splitlines()]
    entries = [v for v in verdicts if v["rule"] not in ("close", "no_position")]
    assert entries and all(float(v["approved_size_pct"]) <= 10 for v in entries)
