"""`/health` and `/health/detailed`: is the bot's read side fit to be trusted, and if not, why.

healthy: the store answers, the read model keeps up with the log, market
data of an active paper/live run is fresh and trading is not halted.
degraded (HTTP 200): the read model trails the log longer than
``monitoring.projector_lag_alert_seconds``, market data is stale, or trading
is halted. unhealthy (HTTP 503): the store cannot be reached or the projector
stopped. Every reason is a sentence an operator can act on.
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
from api.http.errors import COMMON_RESPONSES
from api.http.jsonio import iso, json_response, money

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
    """The overall state and the reasons for it."""

    status: Literal["healthy", "degraded", "unhealthy"]
    reasons: list[str]
    checked_at: str
    checks: HealthChecks


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
    from infrastructure.settings.sections import GRANULARITY_SECONDS

    end = candle["start"] + timedelta(seconds=GRANULARITY_SECONDS.get(candle["granularity"], 0))
    return (now - end).total_seconds()


def stale_after_seconds(node, granularity: str) -> float:
    """A closed candle is stale when older than one bar plus ``monitoring.market_data_stale_seconds``."""
    from infrastructure.settings.sections import GRANULARITY_SECONDS

    return GRANULARITY_SECONDS.get(granularity, 0) + node.settings.monitoring.market_data_stale_seconds


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


def assess(node, detailed: bool = False) -> tuple[dict[str, Any], int]:
    """The health document and its HTTP status (503 when unhealthy)."""
    now = node.clock.now()
    status, reasons = "healthy", []
    components: dict[str, Any] = {}
    checks: dict[str, Any] = {"store_reachable": False, "projector_lag_events": None, "projector_lag_seconds": None,
                              "market_data_age_seconds": None, "halted": None}
    began = time.perf_counter()
    max_id = None
    try:
        max_id = node.store.max_notification_id()
        checks["store_reachable"] = True
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "unreachable", with its message
        status = _worse(status, "unhealthy")
        reasons.append(f"event store unreachable: {type(exc).__name__}: {exc}")
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
        status = _worse(status, "unhealthy")
        reasons.append(f"projector stopped: {projector.error}")
    elif projector is not None and not projector.running:
        status = _worse(status, "unhealthy")
        reasons.append("projector is not running: the read model no longer follows the log")
    elif lag:
        if projector is None:
            status = _worse(status, "degraded")
            reasons.append(f"read model trails the log by {lag} event(s) and no projector runs in this process")
        elif lag_seconds is None or lag_seconds > limit:
            status = _worse(status, "degraded")
            behind = "since start" if lag_seconds is None else f"for {lag_seconds:.0f}s"
            reasons.append(f"projector lag {lag} event(s) {behind} (alert after {limit}s)")
    components["projector"] = {
        "running": None if projector is None else projector.running, "position": position,
        "lag_events": lag, "lag_seconds": lag_seconds, "caught_up_at": iso(projector.caught_up_at) if projector else None,
        "error": projector.error if projector else None,
        **({"projections": node.access.projection_positions()} if detailed else {}),
    }

    run = None
    try:
        run = active_run(node)
        candles = last_candles(node)
    except Exception as exc:  # noqa: BLE001 - a read model being built is reported, not fatal
        candles = []
        status = _worse(status, "degraded")
        reasons.append(f"read model not readable yet: {exc}")
    market: dict[str, Any] = {"active_run": run, "products": []}
    for candle in candles:
        age = candle_age_seconds(node, candle, now)
        stale = age > stale_after_seconds(node, candle["granularity"])
        market["products"].append({"product": candle["product"], "granularity": candle["granularity"],
                                   "last_candle_start": iso(candle["start"]), "close": money(candle["close"]),
                                   "age_seconds": round(age, 3), "stale": stale})
        if run is not None and candle["product"] == run["product"] and candle["granularity"] == run["granularity"]:
            checks["market_data_age_seconds"] = round(age, 3)
            if stale:
                status = _worse(status, "degraded")
                reasons.append(f"market data stale: last {candle['product']} {candle['granularity']} candle closed "
                               f"{age:.0f}s ago (alert after {stale_after_seconds(node, candle['granularity']):.0f}s)")
    if run is not None and checks["market_data_age_seconds"] is None:
        status = _worse(status, "degraded")
        reasons.append(f"no market data yet for the active {run['mode']} run on {run['product']}")
    components["market_data"] = market

    if checks["store_reachable"]:
        try:
            control = control_state(node)
            checks["halted"] = control["halted"]
            components["controls"] = control
            if control["halted"]:
                status = _worse(status, "degraded")
                reasons.append(f"trading halted ({control['severity']}) by {control['by']} since {control['since']}: "
                               f"{control['reason']}")
        except Exception as exc:  # noqa: BLE001
            status = _worse(status, "degraded")
            reasons.append(f"control state unreadable: {exc}")
    try:
        alerts = active_alerts(node)
    except Exception:  # noqa: BLE001 - a read model without the alerts table yet: nothing to add
        alerts = []
    for alert in alerts:
        # The health watch judged the manual's thresholds (memory, CPU, disk, API, LLM, daily loss):
        # a P0 alert makes the bot unhealthy, any other active one degraded.
        status = _worse(status, "unhealthy" if alert["severity"] == "P0" else "degraded")
        reasons.append(f"alert {alert['check_name']} ({alert['severity']}) active since {iso(alert['raised_at'])}: "
                       f"{alert['message']}")
    components["alerts"] = [{"check": a["check_name"], "severity": a["severity"], "status": a["check_status"],
                             "since": iso(a["raised_at"]), "message": a["message"]} for a in alerts]
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
    document = {"status": status, "reasons": reasons or ["all checks passed"], "checked_at": iso(now), "checks": checks}
    if detailed:
        document["components"] = components
    return document, 503 if status == "unhealthy" else 200


_HEALTH_RESPONSES = {**COMMON_RESPONSES, 503: {"model": Health, "description": "unhealthy (the body says why)"}}


@router.get("/health", response_model=Health, responses=_HEALTH_RESPONSES,
            summary="healthy, degraded or unhealthy, with the reasons")
def health(request: Request, _caller=Depends(open_or("viewer", "/health"))):
    document, code = assess(request.app.state.node)
    return json_response(document, code)


@router.get("/health/detailed", response_model=HealthDetailed,
            responses={**COMMON_RESPONSES, 503: {"model": HealthDetailed, "description": "unhealthy"}},
            summary="health with every component's figures")
def health_detailed(request: Request, _caller=Depends(open_or("viewer", "/health/detailed"))):
    document, code = assess(request.app.state.node, detailed=True)
    return json_response(document, code)
