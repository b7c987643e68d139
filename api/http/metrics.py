"""`/metrics` in Prometheus text format, under the names of the operations manual's Grafana dashboard.

Request durations are a histogram labelled by endpoint (the route template, so
ids in paths do not explode the series), observed by a small ASGI middleware.
Every other figure is read when Prometheus scrapes, from the read model (cached
per projector position), the store and the process.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response

from api.http.auth import open_or
from api.http.errors import COMMON_RESPONSES

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NodeMetrics:
    """The read node's Prometheus registry: the request histogram and a collector of trading figures."""

    def __init__(self, node: Any):
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_duration = Histogram(
            "trading_bot_api_request_duration_seconds", "REST API request duration by endpoint",
            ["endpoint", "method", "status"], buckets=BUCKETS, registry=self.registry,
        )
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # the first call starts the measurement window
        self.registry.register(_TradingCollector(self))

    def render(self) -> bytes:
        """This node's figures, then the venue and LLM call figures of this process (empty in `serve`)."""
        from infrastructure.monitoring.calls import CALLS

        return generate_latest(self.registry) + CALLS.render()


def _latest_run_figures(access) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        run = access.one("SELECT run_id, mode, product FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
        figures: dict[str, Any] = {"mode": run["mode"] if run else "none", "daily_pnl": 0.0, "win_rate": 0.0,
                                   "positions": [], "equity": None}
        if run is None:
            return figures
        # The run book's day_pnl (end_equity - day_start_equity) of the latest day, as pnl_daily holds it.
        day = access.one("SELECT day_pnl, end_equity FROM pnl_daily WHERE run_id = ? ORDER BY day DESC LIMIT 1",
                         [run["run_id"]])
        if day:
            figures["daily_pnl"], figures["equity"] = float(day["day_pnl"]), float(day["end_equity"])
        totals = access.one("SELECT coalesce(sum(trades), 0) AS trades, coalesce(sum(wins), 0) AS wins FROM pnl_daily "
                            "WHERE run_id = ?", [run["run_id"]])
        if totals and totals["trades"]:
            figures["win_rate"] = float(totals["wins"]) / float(totals["trades"])
        figures["positions"] = [(r["product"], float(r["quantity"])) for r in access.rows(
            "SELECT product, quantity FROM positions WHERE run_id = ? ORDER BY product", [run["run_id"]])]
        if not figures["positions"]:  # nothing traded yet: the run's product is flat
            figures["positions"] = [(run["product"], 0.0)]
        return figures

    return access.cached(("metrics", "run"), compute)


def _current_run_fills(access) -> tuple[str, int]:
    """(mode, fills) of the latest paper or live run; ("none", 0) when there is none (backtests never count)."""
    run = access.one("SELECT run_id, mode FROM runs WHERE mode IN ('paper', 'live') "
                     "ORDER BY started_at DESC, run_id DESC LIMIT 1")
    if run is None:
        return "none", 0
    return run["mode"], int(access.scalar("SELECT count(*) FROM fills WHERE run_id = ?", [run["run_id"]]) or 0)


class _TradingCollector:
    """Collects the trading, read-model and process figures at scrape time."""

    def __init__(self, metrics: NodeMetrics):
        self.metrics = metrics

    def collect(self):
        from api.http.health import STATUS_VALUE, assess

        node = self.metrics.node
        access = node.access
        health, _ = assess(node)
        yield _gauge("trading_bot_health_status", "1 healthy, 0.5 degraded, 0 unhealthy", STATUS_VALUE[health["status"]])
        halted = health["checks"]["halted"]
        yield _gauge("trading_bot_halted", "1 while the operator's control stream is halted", 1.0 if halted else 0.0)
        lag = health["checks"]["projector_lag_events"]
        yield _gauge("trading_bot_projector_lag_events", "events in the log not yet in the read model", float(lag or 0))
        yield _gauge("trading_bot_projector_lag_seconds", "seconds the read model has trailed the log",
                     float(health["checks"]["projector_lag_seconds"] or 0))
        yield _gauge("trading_bot_projector_position", "last notification id every projection has applied",
                     float(access.position))
        appended = CounterMetricFamily("trading_bot_events_appended", "events appended to the log (its last id)")
        try:
            appended.add_metric([], float(node.store.max_notification_id()))
            yield appended
        except Exception:  # noqa: BLE001 - an unreachable store shows in trading_bot_health_status
            pass
        try:
            figures = _latest_run_figures(access)
            fills = access.cached(("metrics", "fills"), lambda: _current_run_fills(access))
            decisions = access.cached(("metrics", "decisions"), lambda: access.rows(
                "SELECT CASE WHEN failed THEN 'FAILED' ELSE action END AS action, count(*) AS n "
                "FROM decisions GROUP BY 1 ORDER BY 1"))
        except Exception:  # noqa: BLE001 - a read model still being created has no figures yet
            figures, fills, decisions = None, None, []
        if figures is not None:
            yield _gauge("trading_bot_daily_pnl", "day_pnl (end_equity - day_start_equity) of the latest run's latest UTC day (quote currency)",
                         figures["daily_pnl"], ("mode",), (figures["mode"],))
            if figures["equity"] is not None:
                yield _gauge("trading_bot_equity", "equity of the latest run (quote currency)", figures["equity"],
                             ("mode",), (figures["mode"],))
            positions = GaugeMetricFamily("trading_bot_positions", "position quantity of the latest run by product",
                                          labels=["product"])
            for product, quantity in figures["positions"]:
                positions.add_metric([product], quantity)
            yield positions
            yield _gauge("trading_bot_trade_success_rate", "winning share of the latest run's closed round trips (0-1)",
                         figures["win_rate"], ("mode",), (figures["mode"],))
            trades = CounterMetricFamily("trading_bot_trades", "fills of the current (latest) paper or live run",
                                         labels=["mode"])
            trades.add_metric([fills[0]], float(fills[1]))
            yield trades
            by_action = CounterMetricFamily("trading_bot_decisions", "decisions by action (FAILED: fell back to HOLD)",
                                            labels=["action"])
            for row in decisions:
                by_action.add_metric([row["action"]], float(row["n"]))
            yield by_action
        process = self.metrics._process
        yield _gauge("trading_bot_memory_usage_bytes", "resident memory of the read node", float(process.memory_info().rss))
        yield _gauge("trading_bot_cpu_usage_percent", "CPU use of the read node since the last scrape (100 = one core)",
                     float(process.cpu_percent(None)))
        yield _gauge("trading_bot_uptime_seconds", "seconds since the API started", time.monotonic() - node.started)


def _gauge(name: str, documentation: str, value: float, labels: tuple = (), values: tuple = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels) or None)
    family.add_metric(list(values), value)
    return family


class _Timing:
    """ASGI middleware: observes every HTTP request's duration under its route template."""

    def __init__(self, app, histogram: Histogram):
        self.app, self.histogram = app, histogram
        self._children: dict[tuple, Any] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = (getattr(route, "path", None) or scope.get("tradecore.endpoint")
                        or ("/static" if scope["path"].startswith("/static/") else "unmatched"))
            key = (endpoint, scope["method"], status["code"])
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.histogram.labels(endpoint, scope["method"], str(status["code"]))
            child.observe(time.perf_counter() - began)


router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={
    **COMMON_RESPONSES, 200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}},
    summary="Prometheus metrics (trading_bot_*)")
def metrics_endpoint(request: Request, _caller=Depends(open_or("viewer", "/metrics"))):
    return Response(request.app.state.node.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, metrics: NodeMetrics) -> None:
    """The /metrics route and the timing middleware (add it last: it must be the outermost)."""
    app.add_middleware(_Timing, histogram=metrics.request_duration)
    app.include_router(router)
