"""docs/grafana/trading_bot.json and docs/prometheus.yml match what /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.integration.test_api import Node, auth, backtest_read_model

DOCS = Path(__file__).resolve().parents[2] / "docs"
MANUAL_NAMES = {
    "trading_bot_health_status", "trading_bot_daily_pnl", "trading_bot_positions", "trading_bot_trades_total",
    "trading_bot_trade_success_rate", "trading_bot_api_request_duration_seconds", "trading_bot_memory_usage_bytes",
    "trading_bot_cpu_usage_percent",
}


def exposed_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-z_:]+", line).group(0)
            names.add(re.sub(r"_(bucket|sum|count|created)$", "", name))
    return names


def test_every_grafana_panel_queries_metrics_that_metrics_exposes(tmp_path):
    url, path = backtest_read_model(tmp_path, "2018-01-01", "2018-01-04")
    node = Node(url, path)
    try:
        node.client.get("/positions", headers=auth("viewer"))  # one request, so the histogram has a series
        from infrastructure.monitoring.calls import CALLS

        CALLS.venue_call("coinbase", "get_public_candles", 0.05)  # venue and LLM calls of this process
        CALLS.venue_call("coinbase", "get_public_candles", 0.01, error=RuntimeError("429"), error_kind="rate_limited",
                         rate_limit_wait=1.0)
        CALLS.llm_call("gpt-4o-mini", 0.8, failure_kind="timeout")
        exposed = exposed_names(node.client.get("/metrics").text)
    finally:
        node.close()
    assert MANUAL_NAMES <= exposed
    dashboard = json.loads((DOCS / "grafana" / "trading_bot.json").read_text())
    assert dashboard["title"] and dashboard["panels"] and dashboard["uid"]
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in ("stat", "timeseries", "table") and panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"trading_bot_[a-z_]+", target["expr"]):
                queried.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert queried - exposed == set()
    titles = {panel["title"]: panel for panel in dashboard["panels"]}
    outside = " ".join(target["expr"] for target in titles["API Response Times"]["targets"])
    assert "trading_bot_venue_request_duration_seconds" in outside and "trading_bot_llm_request_duration_seconds" in outside
    assert "trading_bot_api_request_duration_seconds" not in outside
    rest = titles["tradecore REST API"]
    assert rest["gridPos"]["y"] == titles["API Response Times"]["gridPos"]["y"]  # side by side
    assert "trading_bot_api_request_duration_seconds" in rest["targets"][0]["expr"]
    assert MANUAL_NAMES <= queried | {"trading_bot_api_request_duration_seconds"}


def test_prometheus_config_scrapes_the_bots_metrics_path():
    config = yaml.safe_load((DOCS / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "tradecore")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
