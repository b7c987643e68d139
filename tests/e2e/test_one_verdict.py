"""One verdict: `tradecore health` and GET /health give the same status for the same state.

They may differ only in the read-model check, which needs a read node: the command shows it as skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.bootstrap import open_store
from api.http import create_app
from api.http.readmodel import ReadModelAccess
from domain.events import EventMeta
from projections.engine import runner
from tests.integration.test_api import TOKENS, backtest_read_model
from infrastructure.settings.loading import load_settings
from tests.support.machine import CALM_MACHINE

ROOT = Path(__file__).resolve().parents[2]
FULL_DISK = {"MONITORING__DISK_ALERT_PCT": "0.001", "MONITORING__DISK_TARGET_PCT": "0.0005"}


class WallClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@pytest.fixture()
def world(tmp_path):
    url, path = backtest_read_model(tmp_path, "2018-01-01", "2018-01-08")
    return url, path


def _both(url: str, path: Path, env: dict[str, str]) -> tuple[dict, dict]:
    cli = subprocess.run([sys.executable, "-m", "api.cli", "health", "--json", "--store", url], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert cli.returncode in (0, 1), cli.stderr
    store = open_store(url)
    con = runner.open_readmodel(path)
    try:
        runner.catch_up(store, con, runner.ALL_PROJECTIONS, 5000)  # a read node that keeps up
        tokens = [{"name": "vera", "token": TOKENS["viewer"], "role": "viewer"}]
        app = create_app(store, ReadModelAccess(con), load_settings(env={"SYSTEM__API_TOKENS": json.dumps(tokens), **env}),
                         clock=WallClock())
        http = TestClient(app).get("/health").json()
    finally:
        store.close()
        con.close()
    return json.loads(cli.stdout), http


def _differing(cli: dict, http: dict) -> set[str]:
    a = {c["name"]: c["status"] for c in cli["checks"]}
    b = {c["name"]: c["status"] for c in http["verdict"]}
    return {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}


def test_the_command_and_the_endpoint_agree_on_a_fresh_backtest_store(world):
    cli, http = _both(*world, CALM_MACHINE)
    assert cli["status"] == http["status"] == "healthy"
    assert _differing(cli, http) <= {"read_model"}
    assert next(c for c in cli["checks"] if c["name"] == "read_model")["status"] == "skipped"


def test_the_command_and_the_endpoint_agree_on_a_halt_and_on_a_full_disk(world):
    url, path = world
    store = open_store(url)
    try:
        store.operator_halt("venue outage", "P1", EventMeta(datetime.now(timezone.utc), actor="operator:alice"))
    finally:
        store.close()
    cli, http = _both(url, path, CALM_MACHINE)
    assert cli["status"] == http["status"] == "degraded"  # a halt is deliberate: degraded, never unhealthy
    cli, http = _both(url, path, {**CALM_MACHINE, **FULL_DISK})
    assert cli["status"] == http["status"] == "unhealthy"
    assert _differing(cli, http) <= {"read_model"}


def test_an_active_p0_alert_makes_both_unhealthy(world):
    from domain.alerts import Alert

    url, path = world
    store = open_store(url)
    try:
        alert = Alert.first("daily_loss", EventMeta(datetime.now(timezone.utc), actor="health"), severity="P0",
                            status="critical", value=Decimal("3.4"), threshold=Decimal(3), unit="%",
                            message="daily loss 3.4% past the 3% limit")
        store.record_in_order(alert.collect_events())
    finally:
        store.close()
    cli, http = _both(url, path, CALM_MACHINE)
    assert cli["status"] == http["status"] == "unhealthy"
