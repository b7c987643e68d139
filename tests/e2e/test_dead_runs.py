"""A run whose process died never stays "running": the next process that opens the store for writing ends it.

Runs of live processes, of other hosts and of unknown processes are never touched; reports mark the runs
that ended abnormally.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from api.bootstrap import open_store
from domain.control import Run
from domain.events import EventMeta
from infrastructure.process import process_alive, this_process
from tests.support.recording import record

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def started(run_id: uuid.UUID, process: str | None) -> Run:
    return Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode="backtest", product="BTC-USD",
                     granularity="1h", strategy="rules", config_hash="x", code_version="test", process=process)


def dead_process() -> str:
    """The identity of a process that ran and is gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import psutil

        identity = f"{os.uname().nodename}:{child.pid}:{int(psutil.Process(child.pid).create_time())}"
        assert process_alive(identity) is True
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert process_alive(identity) is False
    return identity


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ})


def test_the_next_writer_ends_the_runs_of_dead_processes_and_only_those(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    dead, alive, elsewhere, unknown = (uuid.uuid4() for _ in range(4))
    store = open_store(url)
    try:
        record(store, started(dead, dead_process()), started(alive, this_process()),
               started(elsewhere, "another-host:4242:1700000000"), started(unknown, None))
    finally:
        store.close()

    result = cli("halt", "--reason", "maintenance", "--store", url)  # any command that writes
    assert result.returncode == 0, result.stderr
    assert f"run {dead} had no RunEnded" in result.stderr and "Traceback" not in result.stderr

    store = open_store(url)
    try:
        ended = {e.event.originator_id: e.event for e in store.iter_log() if e.event.event_type == "RunEnded"}
    finally:
        store.close()
    assert set(ended) == {dead}
    assert ended[dead].status == "abandoned" and "is gone" in ended[dead].reason and "found by process" in ended[dead].reason

    again = cli("resume", "--reason", "done", "--store", url)  # it is ended once, not again
    assert again.returncode == 0 and "had no RunEnded" not in again.stderr


def test_a_read_only_command_never_writes_the_clean_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    dead = uuid.uuid4()
    store = open_store(url)
    try:
        record(store, started(dead, dead_process()))
        before = store.max_notification_id()
    finally:
        store.close()
    assert cli("events", "--store", url).returncode == 0
    store = open_store(url)
    try:
        assert store.max_notification_id() == before
    finally:
        store.close()


def _runs(url: str) -> tuple[list, list]:
    store = open_store(url)
    try:
        events = [e.event for e in store.iter_log() if e.event.event_type in ("RunStarted", "RunEnded")]
    finally:
        store.close()
    return [e for e in events if e.event_type == "RunStarted"], [e for e in events if e.event_type == "RunEnded"]


def _run_started(path) -> bool:
    """Whether the log holds a RunStarted (a raw read: polled every few ms while the backtest runs)."""
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT 1 FROM stored_events WHERE topic LIKE '%:RunStarted' LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:  # the store is being created
        return False


def test_a_backtest_killed_with_sigkill_is_ended_by_the_next_backtest(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "backtest", "--bundled", "--store", url], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    started = False  # RunStarted is written before the first candle (its own transaction): kill right after it
    while time.monotonic() < deadline and not started and proc.poll() is None:
        time.sleep(0.005)
        started = _run_started(tmp_path / "events.db")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    starts, ends = _runs(url)
    assert len(starts) == 1 and ends == [], "the backtest must be killed while it runs"
    second = cli("backtest", "--from", "2019-01-01", "--to", "2019-02-01", "--store", url)
    assert second.returncode == 0, second.stderr
    assert "had no RunEnded and its process is gone" in second.stderr
    starts, ends = _runs(url)
    first = [e for e in ends if e.originator_id == starts[0].originator_id]
    assert len(first) == 1 and first[0].status == "abandoned"
    assert len(starts) == 2 and {e.status for e in ends} == {"abandoned", "completed"}
