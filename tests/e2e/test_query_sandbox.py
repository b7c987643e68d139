"""`tradecore query` is really read-only: only a plain query runs, and it cannot reach files or change settings."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_reports_cli import backtested, cli


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """A store with a two-day backtest and its read-model path."""
    return backtested(tmp_path_factory.mktemp("sandbox"), "2018-01-01", "2018-01-03")


def _query(days, sql: str, *extra: str):
    store, env, _ = days
    return cli("query", sql, "--format", "json", "--store", store, *extra, env=env)


@pytest.mark.parametrize(
    "statement",
    [
        "COPY fills TO '{leak}'",
        "EXPLAIN ANALYZE COPY fills TO '{leak}'",
        "EXPLAIN SELECT 1",
        "ATTACH '{leak}' AS other",
        "INSTALL json",
        "LOAD json",
        "PRAGMA version",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "CALL pragma_version()",
        "EXPORT DATABASE '{leak}'",
        "CHECKPOINT",
        "SELECT 1; COPY fills TO '{leak}'",
    ],
)
def test_query_refuses_every_statement_but_a_plain_query(days, tmp_path, statement):
    leak = tmp_path / "leak.csv"
    result = _query(days, statement.format(leak=leak))
    assert result.returncode == 2, (statement, result.stdout)
    assert "refused" in result.stderr or "exactly one statement" in result.stderr
    assert "Traceback" not in result.stderr
    assert not leak.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('{tmp}/x.parquet')",
        "WITH f AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM f",
    ],
)
@pytest.mark.parametrize("as_of", [None, "5"])
def test_a_query_cannot_read_host_files(days, tmp_path, sql, as_of):
    """Both the caught-up file and the in-memory --as-of model are sealed."""
    extra = ("--as-of", as_of) if as_of else ()
    result = _query(days, sql.format(tmp=tmp_path), *extra)
    assert result.returncode == 2, result.stdout
    message = " ".join(result.stderr.split())
    assert "refused" in message and "file system operations are disabled" in message
    assert "root:" not in result.stdout and "Traceback" not in result.stderr


def test_plain_queries_still_answer(days):
    assert json.loads(_query(days, "SELECT count(*) AS n FROM decisions").stdout)["n"] == 72
    with_clause = _query(days, "WITH c AS (SELECT * FROM decisions) SELECT count(*) AS n FROM c")
    assert json.loads(with_clause.stdout)["n"] == 72
    assert "candles" in _query(days, "SHOW TABLES").stdout
    as_of = _query(days, "SELECT count(*) AS n FROM candles", "--as-of", "5")
    assert as_of.returncode == 0 and json.loads(as_of.stdout)["n"] == 5  # the log starts with the imported candles


def test_the_snapshot_read_while_a_follower_owns_the_file_is_sealed_too(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.e2e.test_reports_cli import ROOT

    store = f"sqlite:///{tmp_path}/events.db"
    env = {"READMODEL__PATH": str(tmp_path / "rm.duckdb")}
    assert cli("backtest", "--bundled", "--from", "2018-03-01", "--to", "2018-03-01", "--store", store, "--json").returncode == 0
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__"))} | env
    owner = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "project", "--follow", "--snapshot-every", "0.2", "--poll-ms", "50", "--store", store],
        cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 60
        while not (tmp_path / "rm.snapshot.duckdb").exists():
            assert owner.poll() is None and time.time() < deadline, "the owner never published a snapshot"
            time.sleep(0.1)
        leak = tmp_path / "leak.csv"
        for sql in ("SELECT * FROM read_csv_auto('/etc/passwd')", f"SELECT * FROM glob('{tmp_path}/*')"):
            result = cli("query", sql, "--format", "json", "--store", store, env=env)
            assert result.returncode == 2 and "file system operations are disabled" in " ".join(result.stderr.split())
        assert cli("query", f"COPY candles TO '{leak}'", "--store", store, env=env).returncode == 2 and not leak.exists()
        seen = cli("query", "SELECT count(*) AS n FROM candles", "--format", "json", "--store", store, env=env)
        assert seen.returncode == 0 and json.loads(seen.stdout)["n"] > 0
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.communicate(timeout=60)
