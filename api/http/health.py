"""`/health` and `/health/detailed`: is the bot's read side fit to be trusted, and if not, why.

The verdict is the one ``tradecore health`` gives (application/health/verdict.py):
the same probe and thresholds (machine, disk, the active paper/live run's
market data, daily loss and LLM response rate, halts), the store, the health
watch's active alerts, and, here only, the read model's lag behind the log.
healthy: every check is ok or skipped. degraded (HTTP 200): a check warns or a
P2/P3 one fails, or trading is halted. unhealthy (HTTP 503): a P0/P1 check
fails (the store cannot be reached, the projector stopped, the disk is full).
Every reason is a sentence an operator can act on.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any, Literal

import psutil
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.http.auth import open_or
from api.http.errors import COMMON_RESPONSES, NOT_FOUND, Missing
from api.http.jsonio import iso, json_response, money
from api.http.reading import Bot

RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}
STATUS_VALUE = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}

router = APIRouter(tags=["health"])


class HealthChecks(BaseModel):
    store_reachable: bool
    projector_lag_events: int | None
    projector_lag_seconds: float | None
    market_data_age_seconds: float | None
    halted: bool | None


class Health(BaseModel):
    """The overall state and the reasons for it; ``verdict``: every check as `tradecore health` prints it."""

    status: Literal["healthy", "degraded", "unhealthy"]
    reasons: list[str]
    checked_at: str
    checks: HealthChecks
    verdict: list[dict[str, Any]] = []


class HealthDetailed(Health):
    components: dict[str, Any]


def _worse(current: str, candidate: str) -> str:
    return candidate if RANK[candidate] > RANK[current] else current


def active_run(node) -> dict[str, Any] | None:
    """The latest paper or live run that has not ended, from the read model (None if none)."""
    return node.access.cached(("active_run",), lambda: node.access.one(
        "SELECT run_id::VARCHAR AS run_id, mode, product, granularity, started_at FROM runs "
        "WHERE mode IN ('paper', 'live') AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1"))


def last_candles(node) -> list[dict[str, Any]]:
    """The newest candle of each product and granularity."""
    return node.access.cached(("last_candles",), lambda: node.access.rows(
        "SELECT product, granularity, max(start) AS start, arg_max(close, start) AS close, count(*) AS candles "
        "FROM candles GROUP BY product, granularity ORDER BY product, granularity"))


def active_alerts(node) -> list[dict[str, Any]]:
    """The health watch's alerts still active (raised by `run` or `health --watch`), worst first."""
    return node.access.cached(("active_alerts",), lambda: node.access.rows(
        "SELECT check_name, severity, check_status, message, raised_at FROM alerts "
        "WHERE status = 'active' ORDER BY severity, raised_at"))


def candle_age_seconds(node, candle: dict[str, Any], now) -> float:
    from domain.market import GRANULARITIES

    end = candle["start"] + GRANULARITIES.get(candle["granularity"], timedelta(0))
    return (now - end).total_seconds()


def stale_after_seconds(node, granularity: str) -> float:
    """A closed candle is stale when older than one bar plus ``monitoring.market_data_stale_seconds``."""
    from domain.market import GRANULARITIES

    return GRANULARITIES.get(granularity, timedelta(0)).total_seconds() + node.settings.monitoring.market_data_stale_seconds


def control_state(node) -> dict[str, Any]:
    """The operator's control stream (halted, by whom, why), read from the store (never lags)."""
    control = node.store.get_trading_control()
    if control is None:
        return {"halted": False, "reason": None, "severity": None, "since": None, "by": None, "cancel_requests": 0}
    return {
        "halted": bool(control.halted), "reason": control.halt_reason,
        "severity": control.severity.value if control.severity else None,
        "since": iso(control.halted_at), "by": control.halted_by, "cancel_requests": control.cancel_requests,
    }


def _probe(node, bot: str | None):
    """The node's health probe of ``bot`` (None: every bot), built once each: its run follower reads only what was
    appended since."""
    probe = node.health_probes.get(bot)
    if probe is None:
        from api.bootstrap import health_probe

        probe = node.health_probes[bot] = health_probe(node.settings, node.store, node.clock, measure_process=False,
                                                       bot=bot)
    return probe


def known_bots(node) -> list[str]:
    """The paper/live bots the read model knows (``GET /bots``)."""
    rows = node.access.cached(("health_bots",), lambda: node.access.rows(
        "SELECT DISTINCT bot_id FROM runs WHERE mode <> 'backtest' ORDER BY bot_id"))
    return [row["bot_id"] for row in rows]


def assess(node, detailed: bool = False, bot: str | None = None) -> tuple[dict[str, Any], int]:
    """The health document and its HTTP status (503 when unhealthy): the one verdict of
    application/health/verdict.py, with this read node's own read-model check. Of ``bot`` (``?bot=``, else the
    bot this node runs beside in `tradecore run`): its run, its halts and its alerts besides the shared ones; of
    every bot without one. A bot the read model does not know is 404 unknown_bot."""
    from api.bootstrap import health_thresholds
    from application.health.verdict import (active_alerts, alert_scopes, alerts_check, read_model_check, report_with,
                                            store_check)
    from domain.control import Severity

    if bot is not None and bot not in known_bots(node):
        raise Missing(f"no bot {bot!r} in the read model (GET /bots lists them)", code="unknown_bot")
    bot = bot or node.bot

    now = node.clock.now()
    components: dict[str, Any] = {}
    checks: dict[str, Any] = {"store_reachable": False, "projector_lag_events": None, "projector_lag_seconds": None,
                              "market_data_age_seconds": None, "halted": None}
    began = time.perf_counter()
    max_id, store_error = None, ""
    try:
        max_id = node.store.max_notification_id()
        checks["store_reachable"] = True
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "unreachable", with its message
        store_error = f"{type(exc).__name__}: {exc}"
    components["store"] = {"reachable": checks["store_reachable"], "last_notification_id": max_id,
                           "latency_ms": round((time.perf_counter() - began) * 1000, 3)}

    position = node.access.position
    projector = node.projector
    lag = None if max_id is None else max(0, max_id - position)
    lag_seconds = None
    if lag is not None:
        if lag == 0:
            lag_seconds = 0.0
        elif projector is not None and projector.caught_up_at is not None:
            lag_seconds = max(0.0, (now - projector.caught_up_at).total_seconds())
    checks["projector_lag_events"], checks["projector_lag_seconds"] = lag, lag_seconds
    limit = node.settings.monitoring.projector_lag_alert_seconds
    if projector is not None and projector.error:
        read_model = read_model_check("critical", f"Projector stopped: {projector.error}", Severity.P1)
    elif projector is not None and not projector.running:
        read_model = read_model_check("critical", "Projector is not running: the read model no longer follows the log",
                                      Severity.P1)
    elif lag is None:
        read_model = read_model_check("skipped", "Read model lag not measured: the store did not answer")
    elif lag and projector is None:
        read_model = read_model_check("warn", f"Read model trails the log by {lag} event(s) and no projector runs "
                                              "in this process")
    elif lag and (lag_seconds is None or lag_seconds > limit):
        behind = "since start" if lag_seconds is None else f"for {lag_seconds:.0f}s"
        read_model = read_model_check("warn", f"Projector lag {lag} event(s) {behind} (alert after {limit}s)")
    else:
        read_model = read_model_check("ok", f"Read model at notification {position} ({lag or 0} behind)")
    components["projector"] = {
        "running": None if projector is None else projector.running, "position": position,
        "lag_events": lag, "lag_seconds": lag_seconds, "caught_up_at": iso(projector.caught_up_at) if projector else None,
        "error": projector.error if projector else None,
        "following": projector.following if projector else None,  # listen/notify (PostgreSQL) or polling
        **({"projections": node.access.projection_positions()} if detailed else {}),
    }

    extra = [store_check(checks["store_reachable"], f" (last notification {max_id})" if max_id is not None
                         else store_error), read_model]
    alerts: list = []
    if checks["store_reachable"]:
        try:
            alerts = active_alerts(node.store, alert_scopes(bot, known_bots(node)))
        except Exception:  # noqa: BLE001 - unreadable alert streams count as none (the store check says why)
            alerts = []
        extra.append(alerts_check(alerts))
        try:
            report = report_with(_probe(node, bot), lambda g: health_thresholds(node.settings, g), extra)
        except Exception as exc:  # noqa: BLE001 - the store answered the head but not the log
            extra[0] = store_check(False, f"{type(exc).__name__}: {exc}")
            from application.health.watch import HealthReport

            report = HealthReport(now, tuple(extra))
    else:
        from application.health.watch import HealthReport

        report = HealthReport(now, tuple(extra))
    status = report.overall
    by_name = {c.name: c for c in report.checks}
    if "market_data_age" in by_name and by_name["market_data_age"].value is not None:
        checks["market_data_age_seconds"] = float(by_name["market_data_age"].value)
    if "trading_halted" in by_name and by_name["trading_halted"].value is not None:
        checks["halted"] = by_name["trading_halted"].value == 1
    reasons = [c.message for c in report.checks if c.status in ("warn", "critical")]
    if checks["store_reachable"]:
        try:
            components["controls"] = control_state(node)
        except Exception:  # noqa: BLE001 - the trading_halted check already says what it could
            pass
    try:
        components["market_data"] = {"active_run": active_run(node), "products": [
            {"product": c["product"], "granularity": c["granularity"], "last_candle_start": iso(c["start"]),
             "close": money(c["close"]), "age_seconds": round(candle_age_seconds(node, c, now), 3)}
            for c in last_candles(node)]}
    except Exception:  # noqa: BLE001 - a read model being built
        components["market_data"] = {"active_run": None, "products": []}
    components["alerts"] = [{"check": check, "severity": severity.value, "since": since}
                            for check, severity, since in alerts]
    if detailed:
        process = psutil.Process(os.getpid())
        components["process"] = {
            "pid": process.pid, "memory_rss_bytes": process.memory_info().rss,
            "uptime_seconds": round(time.monotonic() - node.started, 3), "threads": process.num_threads(),
            "version": node.version,
        }
        components["thresholds"] = {
            "projector_lag_alert_seconds": limit,
            "market_data_stale_seconds": node.settings.monitoring.market_data_stale_seconds,
        }
    document = {"status": status, "reasons": reasons or ["all checks passed"], "checked_at": iso(now), "checks": checks,
                "verdict": [c.to_dict() for c in report.checks]}
    if detailed:
        document["components"] = components
    return document, 503 if status == "unhealthy" else 200


_HEALTH_RESPONSES = {**COMMON_RESPONSES, **NOT_FOUND, 503: {"model": Health, "description": "unhealthy (the body says why)"}}


@router.get("/health", response_model=Health, responses=_HEALTH_RESPONSES,
            summary="healthy, degraded or unhealthy, with the reasons")
def health(request: Request, bot: str | None = Bot, _caller=Depends(open_or("viewer", "/health"))):
    document, code = assess(request.app.state.node, bot=bot)
    return json_response(document, code)


@router.get("/health/detailed", response_model=HealthDetailed,
            responses={**COMMON_RESPONSES, **NOT_FOUND, 503: {"model": HealthDetailed, "description": "unhealthy"}},
            summary="health with every component's figures")
def health_detailed(request: Request, bot: str | None = Bot, _caller=Depends(open_or("viewer", "/health/detailed"))):
    document, code = assess(request.app.state.node, detailed=True, bot=bot)
    return json_response(document, code)
