"""`tradecore events`: the auditor pages through the log through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from tests.conftest import T0

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def seeded(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/events.db"
    app = open_store(url)
    run_id, correlation = uuid.uuid4(), uuid.uuid4()
    meta = EventMeta(T0, actor="system", run_id=run_id, correlation_id=correlation)
    app.record_candles([Candle("BTC-USD", "1h", T0 + timedelta(hours=i), D("100"), D("110"), D("90"), D("105"), D("1")) for i in range(10)], meta)
    app.operator_halt("drill", "P1", EventMeta(T0 + timedelta(hours=11), actor="operator:alice", correlation_id=correlation))
    app.close()
    return url


def test_events_json_lines_page_in_order_with_envelope(tmp_path):
    url = seeded(tmp_path)
    first = cli("events", "--store", url, "--json", "--limit", "4")
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["notification_id"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["type"] == "CandleClosed" and rows[0]["payload"]["close"] == "105"
    assert rows[0]["occurred_at"] == "2024-01-01T01:00:00+00:00"
    second = cli("events", "--store", url, "--json", "--after", "4", "--limit", "100")
    ids = [json.loads(line)["notification_id"] for line in second.stdout.splitlines()]
    assert ids == list(range(5, 13))


def test_events_filter_by_type_and_time(tmp_path):
    url = seeded(tmp_path)
    halted = cli("events", "--store", url, "--json", "--type", "TradingHalted")
    (row,) = [json.loads(line) for line in halted.stdout.splitlines()]
    assert row["actor"] == "operator:alice" and row["payload"] == {"reason": "drill", "severity": "P1"}
    window = cli("events", "--store", url, "--json", "--since", "2024-01-01T03:00:00Z", "--until", "2024-01-01T05:00:00Z")
    times = [json.loads(line)["occurred_at"] for line in window.stdout.splitlines()]
    assert times == ["2024-01-01T03:00:00+00:00", "2024-01-01T04:00:00+00:00"]


def test_events_table_output_names_the_next_cursor(tmp_path):
    url = seeded(tmp_path)
    result = cli("events", "--store", url, "--limit", "3")
    assert result.returncode == 0
    assert "CandleClosed" in result.stdout and "next page: --after 3" in result.stdout


def test_events_refuses_unknown_type_and_bad_time(tmp_path):
    url = seeded(tmp_path)
    bad_type = cli("events", "--store", url, "--type", "OrderTeleported")
    assert bad_type.returncode == 2 and "unknown event type(s): OrderTeleported" in bad_type.stderr
    bad_time = cli("events", "--store", url, "--since", "yesterday")
    assert bad_time.returncode == 2 and "--since 'yesterday' is not an ISO-8601 time" in bad_time.stderr


def test_store_comes_from_eventstore_url_env(tmp_path):
    import os

    url = seeded(tmp_path)
    env = dict(os.environ, EVENTSTORE__URL=url)
    result = cli("events", "--json", "--limit", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["notification_id"] == 1


def test_sqlite_store_file_is_private_to_its_owner(tmp_path):
    seeded(tmp_path)
    mode = (tmp_path / "events.db").stat().st_mode & 0o777
    assert mode == 0o600
