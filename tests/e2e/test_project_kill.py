"""`tradecore project` killed with SIGKILL and restarted ends with the same read model as a fresh rebuild."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from api.bootstrap import open_store

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "TRADING__", "RISK__"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=_env())


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """The bundled candles imported (20,111 events) and a year of them through the backtest (about 9,000 more)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('log')}/events.db"
    done = cli("backtest", "--bundled", "--from", "2017-07-01", "--to", "2018-06-30", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["events"] > 5_000  # the run's own events; the candles were imported
    return url


@pytest.fixture(scope="module")
def rebuilt(store, tmp_path_factory) -> str:
    """`--checksum` output of a fresh rebuild into a file of its own."""
    fresh = tmp_path_factory.mktemp("fresh") / "readmodel.duckdb"
    done = cli("project", "--rebuild", "--checksum", "--store", store, "--readmodel", str(fresh))
    assert done.returncode == 0, done.stderr
    assert "candles  " in done.stdout and "orders  " in done.stdout
    return done.stdout


def positions(path: Path) -> dict[str, int]:
    """Read only after the owning process is dead (DuckDB: one process per file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT name, last_notification_id FROM projection_tracking").fetchall())
    finally:
        con.close()


def last_id(url: str) -> int:
    """The last notification id of the log at url: the position a follower that caught up reports."""
    app = open_store(url)
    try:
        return app.max_notification_id()
    finally:
        app.close()


def kill_after(process: subprocess.Popen, line_starts: str) -> str:
    """SIGKILL the process as soon as it prints a line starting with ``line_starts``."""
    for line in process.stdout:
        if line.startswith(line_starts):
            break
    else:  # pragma: no cover - it ended before printing it
        raise AssertionError(f"no {line_starts!r} line; stderr: {process.stderr.read()}")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return line


def test_killed_midway_then_restarted_equals_a_fresh_rebuild(tmp_path, store, rebuilt):
    path = tmp_path / "readmodel.duckdb"
    process = start("project", "--progress", "--batch-size", "300", "--store", store, "--readmodel", str(path))
    line = kill_after(process, "progress ")
    _, position, last_id = line.split()
    assert 0 < int(position) < int(last_id)
    at_kill = positions(path)
    assert min(at_kill.values()) >= int(position) > 0  # every projection committed that page with its rows
    assert min(at_kill.values()) < int(last_id)
    resumed = cli("project", "--checksum", "--store", store, "--readmodel", str(path))  # other page boundaries
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == rebuilt
    assert set(positions(path).values()) == {int(last_id)}


def test_killed_during_the_very_first_batch_then_restarted_equals_a_fresh_rebuild(tmp_path, store, rebuilt):
    path = tmp_path / "readmodel.duckdb"
    # One page holds the whole log: the kill lands before its first transaction commits.
    process = start("project", "--progress", "--batch-size", "1000000", "--store", store, "--readmodel", str(path))
    kill_after(process, "start ")
    at_kill = positions(path)
    assert "candles" in at_kill and "orders" in at_kill and set(at_kill.values()) == {0}
    resumed = cli("project", "--checksum", "--store", store, "--readmodel", str(path))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == rebuilt


def test_catching_up_when_already_up_to_date_changes_nothing(tmp_path, store, rebuilt):
    path = tmp_path / "readmodel.duckdb"
    first = cli("project", "--checksum", "--store", store, "--readmodel", str(path))
    assert first.stdout == rebuilt
    before = positions(path)
    again = cli("project", "--json", "--checksum", "--store", store, "--readmodel", str(path))
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["events_read"] == 0
    assert all(p["applied"] == 0 for p in report["projections"].values())
    assert {t: f"{t}  {c['checksum']}  {c['rows']}" for t, c in report["checksums"].items()} == {
        line.split()[0]: line for line in rebuilt.splitlines()}
    assert positions(path) == before


def test_an_unknown_projection_name_is_refused_naming_the_known_ones(tmp_path, store):
    done = cli("project", "--name", "nope", "--store", store, "--readmodel", str(tmp_path / "rm.duckdb"))
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "unknown projection(s): nope" in message and "candles" in message and "orders" in message


def test_follow_applies_new_events_publishes_a_snapshot_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    assert cli("backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-03", "--store", url).returncode == 0
    path = tmp_path / "readmodel.duckdb"
    process = start("project", "--follow", "--progress", "--snapshot-every", "0.2", "--store", url, "--readmodel", str(path))
    try:
        assert process.stdout.readline().startswith("start ")
        for line in process.stdout:  # the first catch-up's report: from here on the follow loop runs
            if " event(s) read in " in line:
                break
        added = cli("backtest", "--bundled", "--from", "2018-02-01", "--to", "2018-02-03", "--store", url, "--json")
        assert added.returncode == 0, added.stderr
        total = last_id(url)
        for line in process.stdout:  # the follow loop reaches the new events without being asked
            if line.startswith("progress ") and int(line.split()[1]) == total:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, process.stderr.read()
    assert set(positions(path).values()) == {total}
    snapshot = duckdb.connect(str(tmp_path / "readmodel.snapshot.duckdb"), read_only=True)
    try:  # published on the way out, readable while an owner holds the live file
        assert snapshot.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        snapshot.close()


def test_follow_stops_cleanly_on_sigterm_during_its_first_catch_up(tmp_path):
    """SIGTERM as soon as `project --follow` says where it starts (its first catch-up under way, or just done): a clean
    exit 0, never death by the signal; the positions it reached are kept and a later catch-up goes on from them."""
    url = f"sqlite:///{tmp_path}/events.db"
    assert cli("backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-03-01", "--store", url).returncode == 0
    path = tmp_path / "readmodel.duckdb"
    process = start("project", "--follow", "--progress", "--batch-size", "500", "--snapshot-every", "0",
                    "--store", url, "--readmodel", str(path))
    try:
        assert process.stdout.readline().startswith("start ")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, process.stderr.read()
    total = last_id(url)
    assert all(0 <= p <= total for p in positions(path).values())
    again = cli("project", "--store", url, "--readmodel", str(path))
    assert again.returncode == 0, again.stderr
    assert set(positions(path).values()) == {total}
