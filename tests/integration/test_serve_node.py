"""`start_read_node`: the projector follows the store while uvicorn serves; stop() releases everything."""

from __future__ import annotations

import time

import httpx
import pytest

from api.http.server import start_read_node
from api.bootstrap import open_store
from application.operations.controls import OperatorControls
from infrastructure.clock import RandomIds, SystemClock
from projections.engine import runner
from tests.conftest import fresh_pg_url, require_postgres
from tests.integration.test_api import api_settings, auth, backtest_read_model


def until(predicate, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_read_node_follows_new_events_and_stops_cleanly(tmp_path):
    url, _ = backtest_read_model(tmp_path, "2018-01-01", "2018-01-05")
    path = tmp_path / "node.duckdb"  # a fresh read model: the node builds it from the log
    node = start_read_node(url, api_settings(), "127.0.0.1", 0, readmodel_path=str(path))
    try:
        assert node.url.startswith("http://127.0.0.1:") and node.port > 0
        health = until(lambda: (h := httpx.get(node.url + "/health").json())["checks"]["projector_lag_events"] == 0 and h)
        assert health["status"] == "healthy"
        detailed = httpx.get(node.url + "/health/detailed", headers=auth("viewer")).json()
        assert detailed["components"]["projector"]["running"] is True

        writer = open_store(url)  # another writer (as `tradecore incident open` would be)
        try:
            OperatorControls(writer, SystemClock(), RandomIds()).open_incident("P2", "feed", "candles late", "carol")
        finally:
            writer.close()
        listed = until(lambda: httpx.get(node.url + "/incidents", headers=auth("viewer")).json()["items"])
        assert listed[0]["opened_by"] == "carol" and listed[0]["kind"] == "feed"
    finally:
        node.stop()
    assert not any(t.is_alive() for t in node._threads)
    con = runner.open_readmodel(path)  # the DuckDB lock is released
    try:
        assert con.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1
    finally:
        con.close()
    node.stop()  # a second stop is harmless


@pytest.mark.postgres
def test_read_node_follows_a_postgresql_store(tmp_path):
    require_postgres()
    url = fresh_pg_url()
    writer = open_store(url)
    try:
        controls = OperatorControls(writer, SystemClock(), RandomIds())
        controls.open_incident("P3", "drill", "first", "carol")
        node = start_read_node(url, api_settings(), "127.0.0.1", 0, readmodel_path=str(tmp_path / "pg.duckdb"))
        try:
            until(lambda: httpx.get(node.url + "/incidents", headers=auth("viewer")).json()["items"])
            controls.halt("drill halt", "P2", "carol")  # written while the node runs
            health = until(lambda: (h := httpx.get(node.url + "/health").json())["checks"]["halted"] and h)
            assert health["status"] == "degraded"
            page = until(lambda: httpx.get(node.url + "/events?type=TradingHalted", headers=auth("auditor")).json()["items"])
            assert page[0]["actor"] == "carol"
            assert httpx.get(node.url + "/health/detailed", headers=auth("viewer")).json()["components"]["store"]["reachable"]
        finally:
            node.stop()
    finally:
        writer.close()
