"""Every user error of the CLI ends in ONE line (what was wrong, what to do), a non-zero exit and no
traceback; `--debug` shows the traceback. Through the real `python -m api.cli` process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "SYSTEM__"))}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=run_env)


def hourly_csv(path: Path, hours: int = 120, volume: str = "2.5", start: datetime | None = None) -> Path:
    t0 = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = ["time,open,high,low,close,volume"]
    for i in range(hours):
        close = 100 + (i % 17) - (i % 5) * 0.5
        rows.append(f"{(t0 + timedelta(hours=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},{close - 1},{close + 2},{close - 2},{close},{volume}")
    path.write_text("\n".join(rows) + "\n")
    return path


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The failure printed exactly one error line on stderr, exited non-zero, and showed no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding five days of hourly candles (imported) and one backtest over them."""
    base = tmp_path_factory.mktemp("cli_errors")
    url = f"sqlite:///{base / 'events.db'}"
    done = cli("backtest", "--data", str(hourly_csv(base / "candles.csv")), "--product", "BTC-USD",
               "--granularity", "1h", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    return url, base


def test_bad_dates(store, tmp_path):
    url, _ = store
    one_line_error(cli("backtest", "--from", "last tuesday", "--store", url), "--from 'last tuesday'")
    one_line_error(cli("backtest", "--from", "2024-01-05", "--to", "2024-01-02", "--store", url), "is not before")
    one_line_error(cli("replay", "--date", "2019-13-01", "--store", url), "--date")
    one_line_error(cli("replay", "--date", "9999-12-31", "--store", url), "out of range")


def test_unknown_or_malformed_product(store, tmp_path):
    url, base = store
    one_line_error(cli("data", "import", str(base / "candles.csv"), "--product", "", "--store", url), "BASE-QUOTE")
    one_line_error(cli("backtest", "--product", "ETHUSD", "--store", url), "BASE-QUOTE")
    unknown = one_line_error(cli("backtest", "--product", "DOGE-EUR", "--store", url), "the log holds no DOGE-EUR 1h candles")
    assert "data import" in unknown and "data fetch" in unknown and "it holds BTC-USD 1h (120 candles)" in unknown
    listed = cli("data", "show", "--store", url)
    assert listed.returncode == 0 and listed.stdout.strip() == "BTC-USD 1h: 120 candles"


def test_empty_store_says_what_the_log_holds_and_records_no_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    one_line_error(cli("backtest", "--store", url), "no BTC-USD 1h candles in the log", "--bundled")
    assert cli("events", "--store", url, "--json").stdout == ""  # no RunStarted, nothing at all


def test_too_few_candles_for_the_warm_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'few.db'}"
    result = cli("backtest", "--data", str(hourly_csv(tmp_path / "few.csv", hours=30)), "--store", url)
    assert "30 rows read, 30 imported" in result.stdout  # the import report comes first
    one_line_error(result, "too few BTC-USD 1h candles", "the log holds 30 BTC-USD 1h candles from 2024-01-01")
    assert cli("events", "--store", url, "--type", "RunStarted", "--json").stdout == ""


def test_unreadable_files(store, tmp_path):
    url, _ = store
    fake = tmp_path / "fake.csv.gz"
    fake.write_bytes(os.urandom(4096))
    one_line_error(cli("backtest", "--data", str(fake), "--store", url), "not a readable gzip file")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00" + os.urandom(4096))
    one_line_error(cli("data", "import", str(binary), "--store", url))
    long_field = tmp_path / "long.csv"
    long_field.write_text("time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5," + "x" * 140_000 + "\n")
    one_line_error(cli("data", "import", str(long_field), "--store", url), "field larger than field limit (131072)")
    one_line_error(cli("data", "import", str(tmp_path / "missing.csv"), "--store", url), "does not exist")
    one_line_error(cli("data", "import", str(tmp_path), "--store", url), "is a folder")


def test_bad_store_url(tmp_path):
    one_line_error(cli("events", "--store", "redis://x"), "redis://x")
    one_line_error(cli("backtest", "--store", "mysql://h/db"), "mysql://h/db")
    one_line_error(cli("events", env={"EVENTSTORE__URL": "redis://x"}), "invalid configuration", "EVENTSTORE__URL")


def test_conflicting_candle_is_refused_by_line_and_the_backtest_uses_the_log(store, tmp_path):
    _, base = store
    url = f"sqlite:///{tmp_path / 'conflict.db'}"
    assert cli("data", "import", str(base / "candles.csv"), "--store", url).returncode == 0
    differing = hourly_csv(tmp_path / "differing.csv", volume="2.50000000000001")
    imported = cli("data", "import", str(differing), "--store", url)
    assert imported.returncode == 1 and "Traceback" not in imported.stderr
    assert "120 refused (differ from the recorded candle)" in imported.stdout
    assert "volume recorded 2.5 offered 2.50000000000001" in imported.stdout
    ran = cli("backtest", "--data", str(differing), "--store", url, "--json")
    assert ran.returncode == 0, ran.stderr  # the refused candles stay out; the run is over the log's
    assert '"candles": 120' in ran.stdout


def test_numbers_and_paths_out_of_range(store, tmp_path):
    url, base = store
    env = {"READMODEL__PATH": str(base / "readmodel.duckdb")}
    one_line_error(cli("events", "--after", "9223372036854775808", "--store", url), "out of range")
    one_line_error(cli("query", "SELECT 1", "--output", str(tmp_path / "no" / "such" / "x.csv"), "--store", url, env=env),
                   "no such file or folder", "x.csv")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(cli("replay", "--date", "2024-01-02", "--html", str(blocker / "x.html"), "--store", url), "a-file")
    one_line_error(cli("query", "SELECT 1", "--output", str(blocker / "x.csv"), "--store", url, env=env), "a-file")


def test_read_model_that_is_not_duckdb(store, tmp_path):
    url, _ = store
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    one_line_error(cli("project", "--readmodel", str(text), "--store", url), "not a valid DuckDB database file")
    one_line_error(cli("project", "--readmodel", str(tmp_path), "--store", url), "Is a directory")
    one_line_error(cli("query", "SELECT 1", "--store", url, env={"READMODEL__PATH": str(text)}), "not a valid DuckDB")
    one_line_error(cli("query", "SELECT 1", "--store", url, env={"READMODEL__PATH": str(tmp_path)}))
    missing = cli("query", "SELECT count(*) > 0 AS ran FROM runs", "--format", "csv", "--store", url,
                  env={"READMODEL__PATH": str(tmp_path / "new" / "rm.duckdb")})
    assert missing.returncode == 0 and missing.stdout.splitlines() == ["ran", "true"]  # a missing folder: built afresh


def test_debug_shows_the_traceback(store):
    url, _ = store
    plain = cli("events", "--after", "9223372036854775808", "--store", url)
    assert "Traceback" not in plain.stderr
    for debug in (cli("--debug", "events", "--after", "9223372036854775808", "--store", url),
                  cli("events", "--after", "9223372036854775808", "--store", url, "--debug"),
                  cli("events", "--after", "9223372036854775808", "--store", url, env={"SYSTEM__LOG_LEVEL": "DEBUG"})):
        assert debug.returncode != 0 and "Traceback" in debug.stderr and "OverflowError" in debug.stderr


def test_usage_mistakes_are_one_line_too():
    one_line_error(cli("backtest", "--bogus"), "tradecore backtest: No such option: --bogus", "tradecore backtest --help")
    one_line_error(cli("data", "import"), "Missing argument 'file'")
    one_line_error(cli("nosuch"), "No such command 'nosuch'")
    group = cli("data")
    assert group.returncode == 2 and "import" in group.stdout and "Traceback" not in group.stderr
