"""`tradecore serve` as an operator runs it: a subprocess on a free port, curled over loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.machine import CALM_MACHINE

ROOT = Path(__file__).resolve().parents[2]
TOKENS = [{"name": "ops-alice", "token": "e2e-operator-token", "role": "operator"},
          {"name": "viewer-vic", "token": "e2e-viewer-token", "role": "viewer"}]
OPERATOR = {"Authorization": "Bearer e2e-operator-token"}
VIEWER = {"Authorization": "Bearer e2e-viewer-token"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "USER": "alice",
            "SYSTEM__API_TOKENS": json.dumps(TOKENS), **CALM_MACHINE}


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "api.cli", *args]
    return subprocess.run(argv, cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=180)


def wait_caught_up(url: str, process: subprocess.Popen, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            health = httpx.get(url + "/health", timeout=2).json()
            if health["checks"]["projector_lag_events"] == 0:
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not catch up within {seconds}s")


@pytest.fixture
def served(tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    backtest = cli(tmp_path, "backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-14", "--store", store, "--json")
    assert backtest.returncode == 0, backtest.stderr
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--store", store,
         "--readmodel", str(tmp_path / "readmodel.duckdb")],
        cwd=ROOT, env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_caught_up(url, process)
        yield url, store, process, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_serve_answers_the_daily_checklist_and_stops_cleanly_on_sigterm(served):
    url, store, process, tmp_path = served
    health = httpx.get(url + "/health").json()
    assert health["status"] == "healthy", health
    positions = httpx.get(url + "/positions", headers=VIEWER).json()
    assert positions["run"]["mode"] == "backtest" and positions["items"]
    risk = httpx.get(url + "/risk/metrics", headers=VIEWER).json()
    assert risk["max_daily_loss_pct"] == "3" and risk["equity"]
    for path in ("/market/status", "/indicators/status", "/llm/status", "/pnl/daily", "/trades", "/orders",
                 "/decisions", "/config", "/config/drift", "/incidents", "/reports/daily"):
        assert httpx.get(url + path, headers=VIEWER).status_code == 200, path
    assert httpx.get(url + "/positions").status_code == 401
    assert httpx.get(url + "/events", headers=VIEWER).status_code == 403
    assert "trading_bot_health_status 1.0" in httpx.get(url + "/metrics").text
    assert httpx.get(url + "/").status_code == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, process.stderr.read()
    assert "e2e-operator-token" not in process.stderr.read()
    assert (tmp_path / "readmodel.snapshot.duckdb").exists()  # readers in other processes use it


def test_cli_halt_and_api_controls_reach_health_and_the_read_model(served):
    url, store, process, tmp_path = served
    halted = cli(tmp_path, "halt", "--reason", "venue outage", "--severity", "P1", "--store", store)
    assert halted.returncode == 0, halted.stderr
    health = httpx.get(url + "/health").json()
    assert health["status"] == "degraded" and any("venue outage" in r for r in health["reasons"])
    resumed = httpx.post(url + "/control/resume", json={"reason": "venue back"}, headers=OPERATOR)
    assert resumed.status_code == 200 and resumed.json()["state"]["halted"] is False
    # The projector follows the log: the resume by the token's name reaches the event log and the read model.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = httpx.get(url + "/events?type=TradingResumed", headers=OPERATOR).json()
        if page["items"] and wait_caught_up(url, process)["status"] == "healthy":
            break
        time.sleep(0.2)
    assert page["items"][-1]["actor"] == "ops-alice" and page["items"][-1]["payload"]["reason"] == "venue back"
    assert httpx.get(url + "/health").json()["status"] == "healthy"


def test_a_second_serve_on_the_same_read_model_is_refused(served):
    url, store, process, tmp_path = served
    second = cli(tmp_path, "serve", "--port", str(free_port()), "--store", store,
                 "--readmodel", str(tmp_path / "readmodel.duckdb"))
    assert second.returncode == 2 and "in use by another tradecore process" in second.stderr


def test_serve_with_access_log_writes_each_request_to_its_log_file(tmp_path):
    store = f"sqlite:///{tmp_path}/events.db"
    assert cli(tmp_path, "backtest", "--bundled", "--from", "2018-01-01", "--to", "2018-01-03", "--store", store).returncode == 0
    port, log = free_port(), tmp_path / "logs" / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--store", store, "--access-log",
         "--readmodel", str(tmp_path / "readmodel.duckdb")],
        cwd=ROOT, env={**environment(tmp_path), "SYSTEM__LOG_FILE": str(log)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_caught_up(url, process)
        assert httpx.get(url + "/risk/metrics", headers={"Authorization": "Bearer e2e-operator-token"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any("/risk/metrics" in line["message"] for line in access), lines[-5:]
    assert not any("Bearer" in line["message"] for line in lines)
