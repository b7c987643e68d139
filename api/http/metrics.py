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
        from api.bootstrap import call_figures

        return generate_latest(self.registry) + call_figures().render()


def _bot_figures(access) -> list[dict[str, Any]]:
    """Per bot (``runs.bot_id``): its latest run's mode, day P&L, equity, win rate and positions."""
    def compute() -> list[dict[str, Any]]:
        out = []
        for run in access.rows("SELECT run_id, mode, product, bot_id FROM runs "
                               "QUALIFY row_number() OVER (PARTITION BY bot_id ORDER BY started_at DESC, run_id DESC) = 1 "
                               "ORDER BY bot_id"):
            figures: dict[str, Any] = {"bot": run["bot_id"], "mode": run["mode"], "daily_pnl": 0.0, "win_rate": 0.0,
                                       "positions": [], "equity": None}
            # The run book's day_pnl (end_equity - day_start_equity) of the latest day, as pnl_daily holds it.
            day = access.one("SELECT day_pnl, end_equity FROM pnl_daily WHERE run_id = ? ORDER BY day DESC LIMIT 1",
                             [run["run_id"]])
            if day:
                figures["daily_pnl"], figures["equity"] = float(day["day_pnl"]), float(day["end_equity"])
            totals = access.one("SELECT coalesce(sum(trades), 0) AS trades, coalesce(sum(wins), 0) AS wins "
                                "FROM pnl_daily WHERE run_id = ?", [run["run_id"]])
            if totals and totals["trades"]:
                figures["win_rate"] = float(totals["wins"]) / float(totals["trades"])
            figures["positions"] = [(r["product"], float(r["quantity"])) for r in access.rows(
                "SELECT product, quantity FROM positions WHERE run_id = ? ORDER BY product", [run["run_id"]])]
            if not figures["positions"]:  # nothing traded yet: the run's product is flat
                figures["positions"] = [(run["product"], 0.0)]
            out.append(figures)
        return out

    return access.cached(("metrics", "bots"), compute)


def _current_run_fills(access) -> list[tuple[str, str, int]]:
    """(mode, bot, fills) of each paper or live bot's latest run; [("none", "none", 0)] without one (backtests
    never count)."""
    rows = access.rows(
        "SELECT r.mode, r.bot_id, (SELECT count(*) FROM fills f WHERE f.run_id = r.run_id) AS n FROM runs r "
        "WHERE r.mode IN ('paper', 'live') "
        "QUALIFY row_number() OVER (PARTITION BY r.bot_id ORDER BY r.started_at DESC, r.run_id DESC) = 1 ORDER BY r.bot_id")
    return [(r["mode"], r["bot_id"], int(r["n"] or 0)) for r in rows] or [("none", "none", 0)]


def _bot_halts(node) -> list[tuple[str, float]]:
    """(bot, 1 halted / 0 trading) for each paper/live bot, from the read model (``GET /bots``)."""
    from api.http.routes.trading import bots_view

    return [(b["bot_id"], 1.0 if b["halted"] else 0.0)
            for b in node.access.cached(("metrics", "halts"), lambda: bots_view(node))["items"]]


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
        halted = GaugeMetricFamily("trading_bot_halted", "1 while halted: bot=\"all\" the stream every bot obeys, "
                                   "else one bot (its own halt or every bot's)", labels=["bot"])
        halted.add_metric(["all"], 1.0 if health["checks"]["halted"] else 0.0)
        try:
            for bot, value in _bot_halts(node):
                halted.add_metric([bot], value)
        except Exception:  # noqa: BLE001 - a read model still being created has no bots yet
            pass
        yield halted
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
            figures = _bot_figures(access)
            fills = access.cached(("metrics", "fills"), lambda: _current_run_fills(access))
            decisions = access.cached(("metrics", "decisions"), lambda: access.rows(
                "SELECT CASE WHEN d.failed THEN 'FAILED' ELSE d.action END AS action, coalesce(r.bot_id, 'none') AS bot, "
                "count(*) AS n FROM decisions d LEFT JOIN runs r USING (run_id) GROUP BY 1, 2 ORDER BY 2, 1"))
        except Exception:  # noqa: BLE001 - a read model still being created has no figures yet
            figures, fills, decisions = None, None, []
        if figures is not None:  # one series per bot (its latest run)
            pnl = GaugeMetricFamily("trading_bot_daily_pnl", "day_pnl (end_equity - day_start_equity) of the bot's "
                                    "latest run's latest UTC day (quote currency)", labels=["mode", "bot"])
            equity = GaugeMetricFamily("trading_bot_equity", "equity of the bot's latest run (quote currency)",
                                       labels=["mode", "bot"])
            positions = GaugeMetricFamily("trading_bot_positions", "position quantity of the bot's latest run by product",
                                          labels=["product", "bot"])
            rate = GaugeMetricFamily("trading_bot_trade_success_rate", "winning share of the bot's latest run's closed "
                                     "round trips (0-1)", labels=["mode", "bot"])
            for bot in figures:
                pnl.add_metric([bot["mode"], bot["bot"]], bot["daily_pnl"])
                if bot["equity"] is not None:
                    equity.add_metric([bot["mode"], bot["bot"]], bot["equity"])
                for product, quantity in bot["positions"]:
                    positions.add_metric([product, bot["bot"]], quantity)
                rate.add_metric([bot["mode"], bot["bot"]], bot["win_rate"])
            yield from (pnl, equity, positions, rate)
            trades = CounterMetricFamily("trading_bot_trades", "fills of each paper or live bot's current (latest) run",
                                         labels=["mode", "bot"])
            for mode, bot, count in fills:
                trades.add_metric([mode, bot], float(count))
            yield trades
            by_action = CounterMetricFamily("trading_bot_decisions", "decisions by action (FAILED: fell back to HOLD)",
                                            labels=["action", "bot"])
            for row in decisions:
                by_action.add_metric([row["action"], row["bot"]], float(row["n"]))
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
