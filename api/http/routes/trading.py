"""Positions, risk usage, daily P&L, trades, orders, decisions, the equity curve and the runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query, Request

from api.http import fleet, schemas
from api.http.auth import VIEWER
from api.http.errors import COMMON_RESPONSES, NOT_FOUND, BadParameter
from api.http.reading import (
    MAX_LIMIT, Before, Bot, Limit, Offset, RunId, choose_run, cached_bytes, cached_json, page_after,
)
from domain.order_states import TERMINAL

router = APIRouter(tags=["trading"], responses={**COMMON_RESPONSES, **NOT_FOUND})


def positions_view(node, run_id, include_flat: bool, limit: int, offset: int, bot: str | None = None) -> dict:
    run = choose_run(node, run_id, bot)
    if run is None:
        return {"run": None, "as_of_position": node.access.position, "items": [], "next_offset": None}
    return fleet.positions_views(node, [run], include_flat, limit, offset)[run["run_id"]]


@router.get("/positions", response_model=schemas.PositionsPage, summary="current positions of a run, per product")
async def positions(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot,
                    include_flat: bool = Query(True, description="also list products whose position is closed"),
                    limit: int = Limit, offset: int = Offset, _caller=VIEWER):
    node = request.app.state.node
    key = ("positions", run_id, bot, include_flat, limit, offset)
    if run_id is None and bot is not None:  # every bot's at once (api/http/fleet.py)
        family = ("positions", "every bot", include_flat, limit, offset)
        return await cached_bytes(node, key, lambda: fleet.for_every_bot(
            node, bot, lambda b: ("positions", None, b, include_flat, limit, offset),
            lambda runs, at: fleet.positions_views(node, runs, include_flat, limit, offset, at), family), family=family)
    return await cached_json(node, key, lambda: positions_view(node, run_id, include_flat, limit, offset, bot))


def risk_view(node, run_id, bot: str | None = None) -> dict:
    """The run's latest UTC day as the run book measured it (pnl_daily and risk_usage rows; domain/run_book.py)."""
    run = choose_run(node, run_id, bot)
    if run is None:
        return fleet.empty_risk(node.access.position, node.settings.risk, None)
    return fleet.risk_views(node, [run])[run["run_id"]]


@router.get("/risk/metrics", response_model=schemas.RiskMetrics, summary="daily loss used against the limit, exposure, drawdown")
async def risk_metrics(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot, _caller=VIEWER):
    node = request.app.state.node
    if run_id is None and bot is not None:  # every bot's at once (api/http/fleet.py)
        family = ("risk", "every bot")
        return await cached_bytes(node, ("risk", None, bot), lambda: fleet.for_every_bot(
            node, bot, lambda b: ("risk", None, b), lambda runs, at: fleet.risk_views(node, runs, at), family), family=family)
    return await cached_json(node, ("risk", run_id, bot), lambda: risk_view(node, run_id, bot))


def run_page(node, run_id, bot, cursor: str, page) -> Callable[[], dict]:
    """The answer of a paged route: the run asked for (else the latest) and ``page(run)``; no run, no items."""
    def compute() -> dict:
        run = choose_run(node, run_id, bot)
        return {"run": None, "items": [], cursor: None} if run is None else {"run": run, **page(run)}
    return compute


@router.get("/pnl/daily", response_model=schemas.PnlPage, summary="realized, unrealized, fees and equity per UTC day")
async def pnl_daily(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot,
                    date_from: date | None = Query(None, alias="from", description="first day (YYYY-MM-DD), inclusive"),
                    date_to: date | None = Query(None, alias="to", description="last day (YYYY-MM-DD), inclusive"),
                    limit: int = Query(366, ge=1, le=MAX_LIMIT, description="at most this many days"), _caller=VIEWER):
    if date_from and date_to and date_from > date_to:
        raise BadParameter(f"query parameter 'from' ({date_from}) is after 'to' ({date_to})")
    node = request.app.state.node

    def page(run: dict) -> dict:
        rows = node.access.rows(
            "SELECT day, day_start_equity, end_equity, day_pnl, realized_pnl, fees, daily_loss_pct, worst_daily_loss_pct, "
            "max_drawdown_pct, risk_score, risk_level, unrealized_pnl, net_pnl, equity, trades, wins FROM pnl_daily "
            "WHERE run_id = ?::UUID AND day >= ? AND day <= ? ORDER BY day LIMIT ?",
            [run["run_id"], date_from or date(1, 1, 1), date_to or date(9999, 12, 31), limit + 1])
        more = len(rows) > limit
        return {"items": rows[:limit], "next_from": rows[limit]["day"].isoformat() if more else None}

    return await cached_json(node, ("pnl", run_id, bot, date_from, date_to, limit),
                             run_page(node, run_id, bot, "next_from", page))


@router.get("/trades", response_model=schemas.TradesPage, summary="fills of a run, newest first")
async def trades(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot, limit: int = Limit, before: int | None = Before,
                 _caller=VIEWER):
    node = request.app.state.node

    def page(run: dict) -> dict:
        rows = node.access.rows(
            "SELECT f.notification_id, f.fill_id, f.order_id::VARCHAR AS order_id, o.decision_id::VARCHAR AS decision_id, "
            "f.run_id::VARCHAR AS run_id, f.product, f.side, f.quantity, f.price, f.fee, "
            "f.fee_currency, f.liquidity, f.occurred_at FROM fills f LEFT JOIN orders o USING (order_id) "
            "WHERE f.run_id = ?::UUID AND f.notification_id < ? ORDER BY f.notification_id DESC LIMIT ?",
            [run["run_id"], before or 2**62, limit + 1])
        for row in rows:  # in Python: DECIMAL(38,18) x DECIMAL(38,18) overflows in DuckDB
            row["notional"] = Decimal(row["quantity"]) * Decimal(row["price"])
        return {"items": rows[:limit], "next_before": page_after(rows, limit)}

    return await cached_json(node, ("trades", run_id, bot, limit, before), run_page(node, run_id, bot, "next_before", page))


OrderStatus = Literal["placed", "submitted", "accepted", "partially_filled", "filled", "cancelled", "rejected", "expired",
                      "working"]


@router.get("/orders", response_model=schemas.OrdersPage, summary="orders of a run, newest first")
async def orders(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot,
                 status: OrderStatus | None = Query(None, description="only orders in this state ('working': not final)"),
                 limit: int = Limit, offset: int = Offset, _caller=VIEWER):
    node = request.app.state.node

    def page(run: dict) -> dict:
        where, params = "run_id = ?::UUID", [run["run_id"]]
        if status == "working":  # not in a final state of the order state machine (domain/order_states.py)
            where += f" AND lower(status) NOT IN ({', '.join(repr(s.value.lower()) for s in sorted(TERMINAL))})"
        elif status:
            where += " AND lower(status) = ?"
            params.append(status)
        rows = node.access.rows(
            "SELECT order_id::VARCHAR AS order_id, run_id::VARCHAR AS run_id, decision_id::VARCHAR AS decision_id, "
            "client_order_id, product, side, type, time_in_force, status, quantity, filled_quantity, average_fill_price, "
            "limit_price, stop_loss_price, take_profit_price, fees, venue_order_id, reason, placed_at, updated_at "
            f"FROM orders WHERE {where} ORDER BY placed_at DESC NULLS LAST, order_id DESC LIMIT ? OFFSET ?",
            [*params, limit + 1, offset])
        return {"items": rows[:limit], "next_offset": offset + limit if len(rows) > limit else None}

    return await cached_json(node, ("orders", run_id, bot, status, limit, offset),
                             run_page(node, run_id, bot, "next_offset", page))


@router.get("/decisions", response_model=schemas.DecisionsPage,
            summary="the strategy's decisions with their rationale and risk verdict, newest first")
async def decisions(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot,
                    action: Literal["LONG", "SHORT", "CLOSE", "HOLD"] | None = Query(None, description="only this action"),
                    trades_only: bool = Query(False, description="leave out HOLD decisions"),
                    limit: int = Limit, before: int | None = Before, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        run = choose_run(node, run_id, bot)
        if run is None:
            return {"run": None, "items": [], "next_before": None}
        where, params = "d.run_id = ?::UUID AND d.notification_id < ?", [run["run_id"], before or 2**62]
        if action:
            where += " AND d.action = ?"
            params.append(action)
        if trades_only:
            where += " AND d.action <> 'HOLD'"
        rows = node.access.rows(
            "SELECT d.notification_id, d.decision_id::VARCHAR AS decision_id, d.run_id::VARCHAR AS run_id, d.occurred_at, "
            "d.candle_start, d.product, d.strategy, d.model, d.action, d.size_pct, d.take_profit_pct, d.stop_loss_pct, "
            "d.rationale, d.failed, d.failure_kind, d.failure_detail, d.latency_ms, d.cost, r.approved AS risk_approved, "
            "r.rule AS risk_rule, r.message AS risk_message FROM decisions d LEFT JOIN risk_assessments r USING (decision_id) "
            f"WHERE {where} ORDER BY d.notification_id DESC LIMIT ?", [*params, limit + 1])
        for row in rows:
            row["failed"] = bool(row["failed"])
        return {"run": run, "items": rows[:limit], "next_before": page_after(rows, limit)}

    return await cached_json(node, ("decisions", run_id, bot, action, trades_only, limit, before), compute)


@router.get("/equity/curve", response_model=schemas.EquityPage,
            summary="equity per candle (the page's points oldest first; page back with next_before)")
async def equity_curve(request: Request, run_id: uuid.UUID | None = RunId, bot: str | None = Bot,
                       limit: int = Query(1000, ge=1, le=5000, description="at most this many points (1 to 5000)"),
                       before: int | None = Before, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        run = choose_run(node, run_id, bot)
        if run is None:
            return {"run": None, "items": [], "next_before": None}
        rows = node.access.rows(
            "SELECT notification_id, candle_end AS at, equity, cash, close, position_quantity, drawdown_pct FROM equity_curve "
            "WHERE run_id = ?::UUID AND notification_id < ? ORDER BY notification_id DESC LIMIT ?",
            [run["run_id"], before or 2**62, limit + 1])
        return {"run": run, "items": rows[:limit][::-1], "next_before": page_after(rows, limit)}

    return await cached_json(node, ("equity", run_id, bot, limit, before), compute)


@router.get("/bots", response_model=schemas.BotsPage, summary="the paper and live bots: latest run and halt, by id")
async def bots(request: Request, _caller=VIEWER):
    node = request.app.state.node
    return await cached_json(node, ("bots",), lambda: bots_view(node))


def bots_view(node) -> dict:
    """Each bot's latest paper/live run (table ``runs``) and the halt in force (its own stream, else every bot's)."""
    from domain.control import TRADING_CONTROL_ID, bot_control_id

    access = node.access
    position = access.position  # before reading: the answer shows at least this position
    runs = access.rows(
        "SELECT bot_id, run_id::VARCHAR AS run_id, mode, product, granularity, strategy, status, started_at, ended_at, "
        "count(*) OVER (PARTITION BY bot_id) AS runs FROM runs WHERE mode <> 'backtest' "
        "QUALIFY row_number() OVER (PARTITION BY bot_id ORDER BY started_at DESC, run_id DESC) = 1 ORDER BY bot_id")
    halts = {str(r["control_id"]): r for r in access.rows(
        "SELECT control_id, action, reason, severity, occurred_at FROM controls "
        "QUALIFY row_number() OVER (PARTITION BY control_id ORDER BY notification_id DESC) = 1")}
    every = halts.get(str(TRADING_CONTROL_ID))
    items = []
    for run in runs:
        own = halts.get(str(bot_control_id(run["bot_id"])))
        halt, by = (own, "bot") if own and own["action"] == "halt" else (every, "all")
        halted = bool(halt and halt["action"] == "halt")
        items.append({**run, "runs": int(run["runs"]), "halted": halted, "halted_by": by if halted else None,
                      "halt_reason": halt["reason"] if halted else None,
                      "halt_severity": halt["severity"] if halted else None})
    return {"as_of_position": position, "items": items}


@router.get("/runs", response_model=schemas.RunsPage, summary="backtest, paper and live runs, newest first")
async def runs(request: Request, bot: str | None = Bot, limit: int = Limit, offset: int = Offset, _caller=VIEWER):
    node = request.app.state.node

    def compute() -> dict:
        rows = node.access.rows(
            "SELECT run_id::VARCHAR AS run_id, mode, product, granularity, strategy, status, started_at, ended_at, bot_id "
            f"FROM runs {'WHERE bot_id = ?' if bot else ''} ORDER BY started_at DESC, run_id DESC LIMIT ? OFFSET ?",
            [*([bot] if bot else []), limit + 1, offset])
        return {"items": rows[:limit], "next_offset": offset + limit if len(rows) > limit else None}

    return await cached_json(node, ("runs", bot, limit, offset), compute)
