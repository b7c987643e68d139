"""Bot-scoped answers for the whole fleet at once: one query per table over every bot's run.

A read node behind a fleet's dashboards is asked one question per bot (``GET /risk/metrics?bot=fleet-07``), and
each page the projector commits makes every kept answer stale. On these small tables a DuckDB query costs about
the same for twenty runs as for one (its fixed cost dominates: about a millisecond, and a risk answer takes six),
so the first bot-scoped request after a page computes that answer for every bot's run in one go and keeps all of
them at the read model's position (``ReadModelAccess.keep``): the other bots' requests find theirs. A view of one
run (``?run_id=``, or no bot) is the same computation over one run, so both ways answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any

from api.http.jsonio import dumps
from api.http.reading import RUN_COLUMNS, choose_run

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_RUNS = "run_id IN (SELECT unnest(?::VARCHAR[])::UUID)"


def bots_runs(access) -> dict[str, dict]:
    """Each bot's run as ``choose_run(node, None, bot)`` picks it: its active paper/live run, else its latest."""
    rows = access.rows(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE bot_id IS NOT NULL QUALIFY row_number() OVER (PARTITION BY bot_id "
        "ORDER BY (mode <> 'backtest' AND ended_at IS NULL) DESC, started_at DESC, run_id DESC) = 1")
    return {r["bot_id"]: r for r in rows}


Views = Callable[[list[dict], "int | None"], dict[str, dict]]  # (runs, position) -> run id -> view


def for_every_bot(node, bot: str, key: Callable[[str], Hashable], views: Views, family: Hashable) -> bytes:
    """``bot``'s answer (JSON bytes), the other bots' kept under ``key(their bot)`` at the same position.

    ``views(runs, position)`` maps each run's id to its view. The family is then hot: after each page the
    projector computes it again before the API sees the new position (``Answers.warm``), so no request waits
    for it. A bot the read model does not know is answered by ``choose_run`` (404 unknown_bot), as for one run.
    """
    access = node.access
    at = access.position
    runs = access.cached(("bots-runs",), lambda: bots_runs(access))
    if bot not in runs:
        run = choose_run(node, None, bot)  # 404, or a run that appeared since: answer it alone
        return dumps(views([run], None)[run["run_id"]])
    answers = _answers(runs, views(list(runs.values()), None), key)
    access.keep(at, {k: body for k, body in answers.items() if k != key(bot)})
    node.answers.used(family, lambda position: every_bot(node, key, views, position))
    return answers[key(bot)]


def every_bot(node, key: Callable[[str], Hashable], views: Views, position: int) -> dict[Hashable, bytes]:
    """Every bot's answer (key -> JSON bytes) as at ``position`` (the page the projector has just committed)."""
    runs = bots_runs(node.access)
    return _answers(runs, views(list(runs.values()), position), key)


def _answers(runs: dict[str, dict], views: dict[str, dict], key: Callable[[str], Hashable]) -> dict[Hashable, bytes]:
    return {key(b): dumps(views[run["run_id"]]) for b, run in runs.items()}


def _side(quantity: Decimal) -> str:
    return "long" if quantity > 0 else "short" if quantity < 0 else "flat"


def positions_views(node, runs: list[dict], include_flat: bool, limit: int, offset: int,
                    position: int | None = None) -> dict[str, dict]:
    """The ``GET /positions`` answer of each run (its positions by product, ``limit`` from ``offset``)."""
    access = node.access
    position = access.position if position is None else position  # before reading: the answer shows at least this
    rows = access.rows(
        "SELECT run_id::VARCHAR AS run_key, product, quantity, average_entry, entry_cost, mark_price, unrealized_pnl, "
        f"realized_pnl, fees, updated_at FROM positions WHERE {_RUNS} {'' if include_flat else 'AND quantity <> 0'} "
        "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY product) BETWEEN ? AND ? ORDER BY run_id, product",
        [[r["run_id"] for r in runs], offset + 1, offset + limit + 1])
    items: dict[str, list[dict]] = {r["run_id"]: [] for r in runs}
    for r in rows:
        run_key = r.pop("run_key")
        quantity = Decimal(r["quantity"])
        mark = r["mark_price"]
        items[run_key].append({**r, "side": _side(quantity),
                               "notional": None if mark is None else abs(quantity) * Decimal(mark)})
    return {run["run_id"]: {"run": run, "as_of_position": position, "items": items[run["run_id"]][:limit],
                            "next_offset": offset + limit if len(items[run["run_id"]]) > limit else None}
            for run in runs}


_RISK = """
WITH ids AS (SELECT DISTINCT unnest(?::VARCHAR[])::UUID AS run_id),
usage AS (SELECT * FROM risk_usage WHERE run_id IN (SELECT run_id FROM ids)
          QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY day DESC) = 1),
curve AS (SELECT run_id, peak_equity, drawdown_pct, max(drawdown_pct) OVER (PARTITION BY run_id) AS worst
          FROM equity_curve WHERE run_id IN (SELECT run_id FROM ids)
          QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY candle_start DESC, notification_id DESC) = 1),
tripped AS (SELECT run_id, occurred_at, reason FROM controls WHERE run_id IN (SELECT run_id FROM ids)
            AND action = 'halt' AND reason LIKE 'max_drawdown:%'
            QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY notification_id DESC) = 1),
refusals AS (SELECT run_id, list({'rule': rule, 'n': n} ORDER BY rule) AS refusals FROM (
               SELECT a.run_id, a.rule, count(*) AS n FROM risk_assessments a
               JOIN usage u ON a.run_id = u.run_id AND a.occurred_at::DATE = u.day
               WHERE NOT a.approved GROUP BY a.run_id, a.rule) GROUP BY run_id)
SELECT ids.run_id::VARCHAR AS run_key, u.run_id IS NOT NULL AS has_usage, p.run_id IS NOT NULL AS has_day,
       u.day, u.equity AS usage_equity, u.exposure, u.max_daily_loss_pct AS usage_max_daily_loss_pct,
       u.pct_of_limit_used, u.max_daily_loss_breached, u.open_positions,
       p.end_equity, p.day_start_equity, p.day_pnl, p.realized_pnl, p.fees, p.daily_loss_pct, p.worst_daily_loss_pct,
       p.max_drawdown_pct, p.risk_score, p.risk_level,
       c.run_id IS NOT NULL AS has_curve, c.drawdown_pct AS curve_drawdown_pct, c.worst AS curve_worst,
       c.peak_equity AS curve_peak_equity,
       t.run_id IS NOT NULL AS tripped, t.occurred_at AS tripped_at, t.reason AS tripped_reason, r.refusals
FROM ids LEFT JOIN usage u ON u.run_id = ids.run_id
LEFT JOIN pnl_daily p ON p.run_id = u.run_id AND p.day = u.day
LEFT JOIN curve c ON c.run_id = ids.run_id
LEFT JOIN tripped t ON t.run_id = ids.run_id
LEFT JOIN refusals r ON r.run_id = ids.run_id
"""


def risk_views(node, runs: list[dict], position: int | None = None) -> dict[str, dict]:
    """The ``GET /risk/metrics`` answer of each run: its latest UTC day as the run book measured it (pnl_daily and
    risk_usage rows; domain/run_book.py), its drawdown and the drawdown breaker. One query for every run (each
    query costs a few milliseconds whatever its size here)."""
    access, risk = node.access, node.settings.risk
    position = access.position if position is None else position  # before reading: the answer shows at least this
    rows = {r["run_key"]: r for r in access.rows(_RISK, [[r["run_id"] for r in runs]])}
    return {run["run_id"]: _risk(position, risk, run, rows[run["run_id"]]) for run in runs}


def empty_risk(position: int, risk: Any, run: dict | None) -> dict:
    """The risk answer before any day was measured (or with no run)."""
    limits = {
        "max_daily_loss_pct": risk.max_daily_loss_pct, "max_position_size_pct": risk.max_position_size_pct,
        "max_concurrent_positions": risk.max_concurrent_positions, "max_leverage": risk.max_leverage,
        "min_balance": risk.min_balance, "rapid_loss_pct": risk.rapid_loss_pct,
        "max_consecutive_losses": risk.max_consecutive_losses, "max_drawdown_pct": risk.max_drawdown_pct,
    }
    return {"run": run, "as_of_position": position, "day": None, "equity": None, "day_start_equity": None,
            "end_equity": None, "day_pnl": None, "realized_pnl": None, "fees": None,
            "daily_loss_pct": None, "worst_daily_loss_pct": None, "max_daily_loss_pct": risk.max_daily_loss_pct,
            "pct_of_limit_used": None, "daily_loss_breached": False, "exposure": None, "exposure_pct": None,
            "open_positions": 0, "drawdown_pct": None, "max_drawdown_pct": None, "run_max_drawdown_pct": None,
            "peak_equity": None, "risk_score": None, "risk_level": None, "refusals_today": {}, "limits": limits,
            "max_drawdown_limit_pct": risk.max_drawdown_pct, "drawdown_breaker": None}


def _risk(position: int, risk: Any, run: dict, row: dict) -> dict:
    view = empty_risk(position, risk, run)
    if row["has_usage"] and row["has_day"]:
        equity = Decimal(row["usage_equity"] or ZERO)
        exposure = Decimal(row["exposure"] or ZERO)
        exposure_pct = exposure / equity * HUNDRED if equity else None
        view.update(day=row["day"].isoformat(), equity=row["end_equity"], end_equity=row["end_equity"],
                    day_start_equity=row["day_start_equity"], day_pnl=row["day_pnl"], realized_pnl=row["realized_pnl"],
                    fees=row["fees"], daily_loss_pct=row["daily_loss_pct"],
                    worst_daily_loss_pct=row["worst_daily_loss_pct"], max_daily_loss_pct=row["usage_max_daily_loss_pct"],
                    pct_of_limit_used=row["pct_of_limit_used"], daily_loss_breached=bool(row["max_daily_loss_breached"]),
                    exposure=exposure, exposure_pct=None if exposure_pct is None else exposure_pct.quantize(Decimal("0.0001")),
                    open_positions=int(row["open_positions"] or 0), max_drawdown_pct=row["max_drawdown_pct"],
                    risk_score=int(row["risk_score"]), risk_level=row["risk_level"],
                    refusals_today={r["rule"] or "unknown": int(r["n"]) for r in row["refusals"] or []})
    if row["has_curve"]:
        view.update(drawdown_pct=row["curve_drawdown_pct"], run_max_drawdown_pct=row["curve_worst"],
                    peak_equity=row["curve_peak_equity"])
    if row["tripped"]:  # the drawdown breaker (risk.max_drawdown_pct) halted the run
        view["drawdown_breaker"] = {"tripped_at": row["tripped_at"].isoformat(), "reason": row["tripped_reason"]}
    return view
