"""Market data, the indicators the strategy saw, and the language model's record."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.http import schemas
from api.http.auth import VIEWER
from api.http.errors import COMMON_RESPONSES, NOT_FOUND
from api.http.jsonio import JsonBytes, dumps, iso, money
from api.http.reading import MAX_ID, Bot, RunId, choose_run, cached_json
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["market"], responses={**COMMON_RESPONSES, **NOT_FOUND})


class ProductStatus(BaseModel):
    product: str
    granularity: str
    last_candle_start: str | None
    last_candle_close_time: str | None
    close: str | None
    candles: int
    age_seconds: float | None
    stale_after_seconds: float
    stale: bool


class MarketStatus(BaseModel):
    checked_at: str
    feed_connected: bool
    feed: str
    active_run: dict[str, Any] | None
    products: list[ProductStatus]


@router.get("/market/status", response_model=MarketStatus, summary="last candle age per product; whether the feed is live")
async def market_status(request: Request, _caller=VIEWER):
    from api.http.health import active_run, candle_age_seconds, last_candles, stale_after_seconds

    node = request.app.state.node

    def compute() -> dict:
        now = node.clock.now()
        run = active_run(node)
        products = []
        live_fresh = False
        for candle in last_candles(node):
            age = candle_age_seconds(node, candle, now)
            limit = stale_after_seconds(node, candle["granularity"])
            products.append({
                "product": candle["product"], "granularity": candle["granularity"],
                "last_candle_start": iso(candle["start"]),
                "last_candle_close_time": iso(now - timedelta(seconds=age)),
                "close": money(candle["close"]), "candles": int(candle["candles"]), "age_seconds": round(age, 3),
                "stale_after_seconds": limit, "stale": age > limit,
            })
            if run and candle["product"] == run["product"] and candle["granularity"] == run["granularity"] and age <= limit:
                live_fresh = True
        if run is None:
            feed = "no paper or live run is active: market data comes from recorded history"
        elif live_fresh:
            feed = f"{run['mode']} run {run['run_id']} receives fresh {run['product']} candles"
        else:
            feed = f"{run['mode']} run {run['run_id']} has no fresh {run['product']} candle: the feed looks disconnected"
        return {"checked_at": iso(now), "feed_connected": bool(run and live_fresh), "feed": feed,
                "active_run": None if run is None else {**run, "started_at": iso(run["started_at"])}, "products": products}

    return JsonBytes(await run_in_threadpool(lambda: dumps(compute())))


@router.get("/market/data", response_model=list[schemas.Candle],
            summary="recent candles, oldest first (a JSON array; page back with before = the first item's notification_id)")
async def market_data(request: Request,
                      product: str | None = Query(None, min_length=3, max_length=30,
                                                  description="e.g. BTC-USD (default trading.product)"),
                      granularity: str | None = Query(None, max_length=4, description="e.g. 1h (default trading.granularity)"),
                      limit: int = Query(100, ge=1, le=1000, description="at most this many candles (1 to 1000)"),
                      before: int | None = Query(None, ge=1, le=MAX_ID,
                                                 description="only candles recorded before this notification id"),
                      _caller=VIEWER):
    node = request.app.state.node
    product = (product or node.settings.trading.product).upper()
    granularity = granularity or node.settings.trading.granularity

    def compute() -> list:
        rows = node.access.rows(
            "SELECT notification_id, product, granularity, start, open, high, low, close, volume FROM candles "
            "WHERE product = ? AND granularity = ? AND notification_id < ? ORDER BY start DESC LIMIT ?",
            [product, granularity, before or MAX_ID, limit])
        return rows[::-1]

    return await cached_json(node, ("candles", product, granularity, limit, before), compute)


class IndicatorsStatus(BaseModel):
    run: schemas.RunRef | None
    product: str | None
    candle_start: str | None
    decided_at: str | None
    candles_seen: int
    warmup_candles: int
    warmed_up: bool
    values: dict[str, Any]
    missing: list[str]


@router.get("/indicators/status", response_model=IndicatorsStatus,
            summary="the indicator values the strategy saw on its latest decision, and warm-up")
async def indicators_status(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        run = choose_run(node, run_id, bot)
        warmup = node.settings.data.indicator_warmup
        view = {"run": run, "product": None, "candle_start": None, "decided_at": None, "candles_seen": 0,
                "warmup_candles": warmup, "warmed_up": False, "values": {}, "missing": []}
        if run is None:
            return view
        last = node.access.one("SELECT notification_id, product, candle_start, occurred_at FROM decisions "
                               "WHERE run_id = ?::UUID ORDER BY notification_id DESC LIMIT 1", [run["run_id"]])
        seen = node.access.scalar("SELECT count(*) FROM decisions WHERE run_id = ?::UUID", [run["run_id"]]) or 0
        view["candles_seen"] = int(seen)
        if last is None:
            return view
        logged = node.store.read_log(last["notification_id"] - 1, 1)
        inputs = dict(getattr(logged[0].event, "inputs", {}) or {}) if logged else {}
        view.update(product=last["product"], candle_start=last["candle_start"], decided_at=last["occurred_at"],
                    values=inputs, missing=sorted(k for k, v in inputs.items() if v is None),
                    warmed_up=int(seen) >= warmup)
        return view

    return await cached_json(node, ("indicators", run_id, bot), compute)


class LlmStatus(BaseModel):
    strategy: str
    provider: str
    model: str
    endpoint: str
    api_key_set: bool
    run: schemas.RunRef | None
    calls: int
    failures: int
    cached: int
    success_rate_pct: str | None
    latency_p50_ms: str | None
    latency_p95_ms: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: str
    usage_unknown: int = Field(0, description="decisions whose response reported no token usage (not counted in the tokens)")
    cost_unknown: int = Field(0, description="decisions whose cost is unknown (no usage, or no price for the model in llm.prices)")
    last_failure: dict[str, Any] | None
    recent_actions: dict[str, int]


@router.get("/llm/status", response_model=LlmStatus, summary="the decision model: calls, failures, latency, tokens, cost")
async def llm_status(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        llm = node.settings.llm
        run = choose_run(node, run_id, bot)
        view = {"strategy": node.settings.trading.strategy, "provider": llm.provider, "model": llm.model,
                "endpoint": llm.base_url or "https://api.openai.com/v1", "api_key_set": llm.api_key is not None,
                "run": run, "calls": 0, "failures": 0, "cached": 0, "success_rate_pct": None, "latency_p50_ms": None,
                "latency_p95_ms": None, "prompt_tokens": 0, "completion_tokens": 0, "cost": "0", "usage_unknown": 0,
                "cost_unknown": 0, "last_failure": None,
                "recent_actions": {}}
        if run is None:
            return view
        stats = node.access.one("SELECT sum(calls) AS calls, sum(failures) AS failures, sum(cached) AS cached, "
                                "max(latency_p50_ms) AS p50, max(latency_p95_ms) AS p95, sum(prompt_tokens) AS pt, "
                                "sum(completion_tokens) AS ct, sum(cost) AS cost, sum(usage_unknown) AS usage_unknown, "
                                "sum(cost_unknown) AS cost_unknown FROM llm_stats WHERE run_id = ?::UUID",
                                [run["run_id"]])
        if stats and stats["calls"]:
            calls, failures = int(stats["calls"]), int(stats["failures"] or 0)
            view.update(calls=calls, failures=failures, cached=int(stats["cached"] or 0),
                        success_rate_pct=money(round((calls - failures) * 100 / calls, 2)),
                        latency_p50_ms=money(stats["p50"]), latency_p95_ms=money(stats["p95"]),
                        prompt_tokens=int(stats["pt"] or 0), completion_tokens=int(stats["ct"] or 0),
                        cost=money(stats["cost"] or 0), usage_unknown=int(stats["usage_unknown"] or 0),
                        cost_unknown=int(stats["cost_unknown"] or 0))
        failure = node.access.one("SELECT occurred_at, failure_kind, failure_detail FROM decisions WHERE run_id = ?::UUID "
                                  "AND failed ORDER BY notification_id DESC LIMIT 1", [run["run_id"]])
        if failure:
            view["last_failure"] = {"at": iso(failure["occurred_at"]), "kind": failure["failure_kind"],
                                    "detail": failure["failure_detail"]}
        recent = node.access.rows("SELECT action, count(*) AS n FROM (SELECT action FROM decisions WHERE run_id = ?::UUID "
                                  "ORDER BY notification_id DESC LIMIT 100) GROUP BY action ORDER BY action", [run["run_id"]])
        view["recent_actions"] = {r["action"]: int(r["n"]) for r in recent}
        return view

    return await cached_json(node, ("llm", run_id, bot), compute)
