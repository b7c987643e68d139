"""The operator's reports, computed from the read-model tables.

``daily_report`` is the operations manual's daily report: trades executed,
success rate, daily P&L, open positions, daily loss used against the limit, a
risk score, and recommendations derived from those numbers (each names the
figure and the threshold that raised it). ``performance_report`` is equity,
drawdown, win rate and fees with a per-day table. Both are pure queries: they
read the tables, never the log, and report the run they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from domain.run_book import shown_day_figures

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Thresholds from the operations manual's "key metrics to monitor".
SUCCESS_RATE_ALERT_PCT = Decimal(40)
LOSS_LIMIT_WARN_PCT = Decimal(80)
DECISION_FAILURE_ALERT_PCT = Decimal(10)
ABNORMAL_ENDS = ("failed", "abandoned")  # RunEnded statuses of runs that did not end by themselves or an operator


class NoData(LookupError):
    """Nothing in the read model matches what the report was asked for."""


@dataclass(frozen=True)
class RunChoice:
    run_id: str
    mode: str
    product: str
    strategy: str
    status: str


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def choose_run(con: duckdb.DuckDBPyConnection, run_id: str | None, day: date | None) -> RunChoice:
    """The run asked for, else the most recently started run with P&L on ``day`` (or any)."""
    if run_id:
        found = _rows(con, "SELECT run_id::VARCHAR AS run_id, mode, product, strategy, status FROM runs WHERE run_id::VARCHAR = ?", [run_id])
        if not found:
            raise NoData(f"no run {run_id} in the read model")
        return RunChoice(**found[0])
    where, params = ("WHERE r.run_id IN (SELECT run_id FROM pnl_daily WHERE day = ?)", [day]) if day else ("WHERE r.run_id IN (SELECT run_id FROM pnl_daily)", [])
    found = _rows(
        con,
        f"SELECT r.run_id::VARCHAR AS run_id, mode, product, strategy, status FROM runs r {where} "
        "ORDER BY started_at DESC, run_id DESC LIMIT 1",
        params,
    )
    if not found:
        raise NoData(f"no run has P&L on {day}" if day else "no run has any P&L yet (run a backtest, then `tradecore project`)")
    return RunChoice(**found[0])


def _latest_day(con: duckdb.DuckDBPyConnection, run_id: str) -> date:
    row = con.execute("SELECT max(day) FROM pnl_daily WHERE run_id::VARCHAR = ?", [run_id]).fetchone()
    if row[0] is None:
        raise NoData(f"run {run_id} has no P&L days")
    return row[0]


def _pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if not whole else (part / whole * HUNDRED)


def _q(value: Decimal | None, places: str = "0.01") -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal(places)))


def daily_report(con: duckdb.DuckDBPyConnection, day: date | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The daily report of one run for one UTC day (default: the run's latest day)."""
    run = choose_run(con, run_id, day)
    day = day or _latest_day(con, run.run_id)
    pnl = _rows(con, "SELECT * FROM pnl_daily WHERE run_id::VARCHAR = ? AND day = ?", [run.run_id, day])
    if not pnl:
        raise NoData(f"run {run.run_id} has no P&L on {day}")
    p = pnl[0]
    risk = (_rows(con, "SELECT * FROM risk_usage WHERE run_id::VARCHAR = ? AND day = ?", [run.run_id, day]) or [{}])[0]
    fills = con.execute(
        "SELECT count(*), coalesce(sum(fee), 0) FROM fills WHERE run_id::VARCHAR = ? AND occurred_at::DATE = ?",
        [run.run_id, day],
    ).fetchone()
    decisions = _rows(
        con,
        "SELECT action, failed, failure_kind, count(*) AS n FROM decisions WHERE run_id::VARCHAR = ? "
        "AND occurred_at::DATE = ? GROUP BY ALL ORDER BY ALL",
        [run.run_id, day],
    )
    refusals = _rows(
        con,
        "SELECT rule, count(*) AS n FROM risk_assessments WHERE run_id::VARCHAR = ? AND occurred_at::DATE = ? "
        "AND NOT approved GROUP BY rule ORDER BY n DESC, rule",
        [run.run_id, day],
    )
    # A backtest's halts are its own; paper and live also answer to the operator's halts (no run id).
    scope = "run_id::VARCHAR = ?" if run.mode == "backtest" else "(run_id::VARCHAR = ? OR run_id IS NULL)"
    halts = _rows(
        con,
        f"SELECT occurred_at, action, reason, severity, actor FROM controls WHERE occurred_at::DATE = ? AND {scope} "
        "ORDER BY notification_id",
        [day, run.run_id],
    )
    positions = _rows(
        con,
        "SELECT product, quantity, average_entry FROM ("
        " SELECT product, quantity, average_entry, row_number() OVER (PARTITION BY product ORDER BY notification_id DESC) AS k"
        " FROM position_history WHERE run_id::VARCHAR = ? AND occurred_at::DATE <= ?) WHERE k = 1 AND quantity <> 0 ORDER BY product",
        [run.run_id, day],
    )
    trades, wins = int(p["trades"]), int(p["wins"])
    success = _pct(Decimal(wins), Decimal(trades))
    # Every figure of the day is the run book's (domain/run_book.py), as pnl_daily and risk_usage hold it.
    equity = Decimal(p["end_equity"])
    exposure = Decimal(risk.get("exposure") or ZERO)
    used = Decimal(risk.get("pct_of_limit_used") or ZERO)  # the day's worst loss, as a share of the limit
    breached = bool(risk.get("max_daily_loss_breached"))
    total_decisions = sum(d["n"] for d in decisions)
    failed_decisions = sum(d["n"] for d in decisions if d["failed"])
    report = {
        "date": day.isoformat(),
        "run": {"run_id": run.run_id, "mode": run.mode, "product": run.product, "strategy": run.strategy, "status": run.status,
                "ended_abnormally": run.status in ABNORMAL_ENDS},
        "day_figures": {**shown_day_figures(p), "risk_level": p["risk_level"]},
        "trading_summary": {
            "trades_executed": int(fills[0]),
            "round_trips_closed": trades,
            "wins": wins,
            "success_rate_pct": _q(success),
            "daily_pnl": _q(p["day_pnl"]),
            "net_pnl": _q(p["net_pnl"]),
            "realized_pnl": _q(p["realized_pnl"]),
            "unrealized_pnl": _q(p["unrealized_pnl"]),
            "fees": _q(p["fees"]),
            "day_start_equity": _q(p["day_start_equity"]),
            "equity": _q(equity),
            "current_positions": [
                {"product": x["product"], "quantity": str(Decimal(x["quantity"]).normalize()), "average_entry": _q(x["average_entry"])}
                for x in positions
            ],
        },
        "risk_analysis": {
            "daily_loss_used_pct": _q(p["worst_daily_loss_pct"]),
            "daily_loss_pct": _q(p["daily_loss_pct"]),
            "max_daily_loss_pct": _q(risk.get("max_daily_loss_pct")),
            "pct_of_limit_used": _q(used),
            "limit_breached": breached,
            "exposure": _q(exposure),
            "max_drawdown_pct": _q(p["max_drawdown_pct"]),
            "open_positions": int(risk.get("open_positions") or 0),
            "drawdown_breaker_tripped": any(h["action"] == "halt" and h["reason"].startswith("max_drawdown:")
                                            for h in halts),
            "risk_score": int(p["risk_score"]),
            "risk_level": p["risk_level"],
            "risk_score_basis": "0.5 x daily-loss limit used (worst loss / limit) + 0.3 x the day's max drawdown (10% = full) + 0.2 x exposure/equity; a breach or halt is at least HIGH (domain/run_book.py risk_score)",
        },
        "decisions": {
            "total": total_decisions,
            "failed": failed_decisions,
            "by_action": {d["action"]: d["n"] for d in decisions if not d["failed"]},
            "failures_by_kind": {d["failure_kind"]: d["n"] for d in decisions if d["failed"]},
            "risk_refusals_by_rule": {r["rule"]: r["n"] for r in refusals},
        },
        "halts": [{**h, "occurred_at": h["occurred_at"].isoformat()} for h in halts],
    }
    report["recommendations"] = recommendations(report, trades, success, used, breached, halts, total_decisions,
                                                failed_decisions, Decimal(p["fees"]), Decimal(p["realized_pnl"]))
    return report


def recommendations(report: dict, trades: int, success: Decimal | None, used: Decimal, breached: bool, halts: list,
                    total_decisions: int, failed_decisions: int, fees: Decimal, realized: Decimal) -> list[str]:
    """What the numbers ask an operator to do; each names its figure and threshold."""
    out = []
    if report["run"]["ended_abnormally"]:
        out.append(f"The run ended abnormally ({report['run']['status']}): its figures stop where it stopped; see "
                   "`tradecore events --type RunEnded` for why before trusting or comparing them.")
    if breached:
        out.append(f"The daily loss limit ({report['risk_analysis']['max_daily_loss_pct']}%) was breached: new entries are "
                   "blocked until 00:00 UTC; review the losing trades before the next session.")
    elif used >= LOSS_LIMIT_WARN_PCT:
        out.append(f"Daily loss used {_q(used)}% of the limit (warning at {LOSS_LIMIT_WARN_PCT}%): reduce position size or pause new entries.")
    if trades >= 3 and success is not None and success < SUCCESS_RATE_ALERT_PCT:
        out.append(f"Success rate {_q(success)}% over {trades} round trips is below the {SUCCESS_RATE_ALERT_PCT}% alert threshold: review the strategy's signals.")
    if trades and fees > abs(realized):
        out.append(f"Fees ({_q(fees)}) exceeded the gross realized P&L ({_q(realized)}): trade less often or prefer limit orders (maker fees).")
    if total_decisions and _pct(Decimal(failed_decisions), Decimal(total_decisions)) >= DECISION_FAILURE_ALERT_PCT:
        out.append(f"{failed_decisions} of {total_decisions} decisions failed ({report['decisions']['failures_by_kind']}): check the LLM endpoint and its rate limits.")
    if halts:
        reasons = "; ".join(h["reason"] for h in halts if h["action"] == "halt") or "resumed only"
        out.append(f"Trading was halted {sum(1 for h in halts if h['action'] == 'halt')} time(s) ({reasons}): see `tradecore events --type TradingHalted`.")
    if total_decisions == 0:
        out.append("No decisions were recorded this day: check the market data feed and the trading loop.")
    if not out:
        out.append("No action needed: every figure is within its threshold.")
    return out


def performance_report(con: duckdb.DuckDBPyConnection, days: int = 30, run_id: str | None = None) -> dict[str, Any]:
    """Equity, drawdown, win rate, fees and a per-day table over a run's last ``days`` days."""
    if days < 1:
        raise ValueError(f"--days must be >= 1, not {days}")
    run = choose_run(con, run_id, None)
    table = _rows(
        con,
        "SELECT day, day_start_equity, equity, day_pnl, max_drawdown_pct, risk_score, net_pnl, realized_pnl, unrealized_pnl, "
        "fees, trades, wins FROM pnl_daily "
        "WHERE run_id::VARCHAR = ? ORDER BY day DESC LIMIT ?",
        [run.run_id, days],
    )[::-1]
    if not table:
        raise NoData(f"run {run.run_id} has no P&L days")
    first, last = table[0]["day"], table[-1]["day"]
    curve = con.execute(  # drawdown within the window, from the window's running peak
        "SELECT coalesce(max((peak - equity) / peak * 100), 0) FROM ("
        " SELECT equity, max(equity) OVER (ORDER BY candle_start ROWS UNBOUNDED PRECEDING) AS peak"
        " FROM equity_curve WHERE run_id::VARCHAR = ? AND candle_end::DATE BETWEEN ? AND ?) WHERE peak > 0",
        [run.run_id, first, last],
    ).fetchone()[0]
    start, end = Decimal(table[0]["day_start_equity"]), Decimal(table[-1]["equity"])
    trades, wins = sum(int(r["trades"]) for r in table), sum(int(r["wins"]) for r in table)
    return {
        "run": {"run_id": run.run_id, "mode": run.mode, "product": run.product, "strategy": run.strategy},
        "from": first.isoformat(),
        "to": last.isoformat(),
        "start_equity": _q(start),
        "end_equity": _q(end),
        "return_pct": _q(_pct(end - start, start)),
        "max_drawdown_pct": _q(curve),
        "trades": trades,
        "wins": wins,
        "win_rate_pct": _q(_pct(Decimal(wins), Decimal(trades))),
        "net_pnl": _q(sum((Decimal(r["net_pnl"]) for r in table), ZERO)),
        "fees": _q(sum((Decimal(r["fees"]) for r in table), ZERO)),
        "days": [
            {"day": r["day"].isoformat(), "equity": _q(r["equity"]), "day_pnl": _q(r["day_pnl"]), "net_pnl": _q(r["net_pnl"]),
             "fees": _q(r["fees"]), "max_drawdown_pct": _q(r["max_drawdown_pct"]), "risk_score": int(r["risk_score"]),
             "trades": int(r["trades"]), "wins": int(r["wins"])}
            for r in table
        ],
    }
