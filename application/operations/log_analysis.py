"""The operations manual's log analyser, over tradecore's JSON-lines log and its event log.

From the log lines of a period: warnings and errors by kind (the logger and the message's shape
with numbers and ids taken out, or the call's ``error_kind``), and every outside call per
service and endpoint with its p50/p95/max latency and error rate (call lines are written by
``infrastructure/monitoring/calls.py``: successes at DEBUG, so a run at INFO only shows failed
calls). From the event log: decisions by action, fills, closed trades, wins and the realized P&L
of the period (``trade_record``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from application.operations.trade_record import TradeRecord

_VARIABLE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b0x[0-9a-f]+\b|\d+(\.\d+)?",
                       re.IGNORECASE)


def message_kind(message: str) -> str:
    """The shape of a message: its text before the first colon, numbers and ids replaced by #."""
    head = message.split(": ", 1)[0][:120]
    return _VARIABLE.sub("#", head)


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..1) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(math.ceil(q * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


def read_lines(lines: Iterable[str], since: datetime | None, until: datetime | None) -> tuple[list[dict], int]:
    """The JSON records of the period, and how many lines were not tradecore's JSON."""
    records, unreadable = [], 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
            at = _time(record["time"])
        except (ValueError, KeyError, TypeError):
            unreadable += 1
            continue
        if at is None:
            unreadable += 1
            continue
        if (since and at < since) or (until and at >= until):
            continue
        record["_at"] = at
        records.append(record)
    return records, unreadable


def analyse(records: list[dict], trading: TradeRecord, *, since: datetime | None, until: datetime | None,
            files: list[str], unreadable: int) -> dict[str, Any]:
    """The analysis as JSON-able data (what `logs analyze --json` prints and the report file holds)."""
    levels = Counter(r.get("level", "?") for r in records)
    problems: Counter = Counter()
    for r in records:
        if r.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            kind = r.get("error_kind") and f"{r.get('service')} {r.get('endpoint')} {r['error_kind']}"
            problems[(r["level"], r.get("logger", "?"), kind or message_kind(str(r.get("message", ""))))] += 1
    calls: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r.get("service") and r.get("endpoint") and "latency_ms" in r:
            calls[(str(r["service"]), str(r["endpoint"]))].append(r)
    call_rows = []
    for (service, endpoint), rows in sorted(calls.items()):
        latencies = sorted(float(r["latency_ms"]) for r in rows)
        errors = sum(1 for r in rows if r.get("outcome") == "error")
        call_rows.append({
            "service": service, "endpoint": endpoint, "calls": len(rows), "errors": errors,
            "error_rate_pct": round(errors * 100 / len(rows), 2),
            "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95), "max_ms": latencies[-1],
            "errors_by_kind": dict(Counter(r.get("error_kind") for r in rows if r.get("outcome") == "error")),
        })
    first = min((r["_at"] for r in records), default=None)
    last = max((r["_at"] for r in records), default=None)
    wins = trading.wins
    return {
        "period": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
                   "first_line": first.isoformat() if first else None, "last_line": last.isoformat() if last else None},
        "files": files,
        "lines": len(records),
        "unreadable_lines": unreadable,
        "levels": dict(sorted(levels.items())),
        "problems": [{"level": lvl, "logger": logger, "kind": kind, "count": n}
                     for (lvl, logger, kind), n in sorted(problems.items(), key=lambda kv: (-kv[1], kv[0]))],
        "calls": call_rows,
        "trading": {
            "runs": trading.runs,
            "decisions": dict(sorted(trading.decisions.items())),
            "fills": trading.fills,
            "closed_trades": len(trading.trades),
            "wins": wins,
            "win_rate_pct": _pct(wins, len(trading.trades)),
            "realized_pnl": _money(trading.realized_pnl),
            "fees": _money(trading.fees),
            "net_pnl": _money(trading.net_pnl),
        },
    }


def _pct(part: int, whole: int) -> str | None:
    return None if not whole else str((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01")))


def _money(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def render_text(report: dict[str, Any]) -> str:
    """The analysis for people: one block per question."""
    out = []
    p = report["period"]
    out.append(f"log analysis {p['since'] or 'start'} .. {p['until'] or 'now'}: {report['lines']} line(s) in "
               f"{len(report['files'])} file(s)" + (f", {report['unreadable_lines']} unreadable" if report["unreadable_lines"] else ""))
    out.append("levels: " + (", ".join(f"{k} {v}" for k, v in report["levels"].items()) or "none"))
    out.append("warnings and errors by kind:" if report["problems"] else "warnings and errors: none")
    for row in report["problems"][:30]:
        out.append(f"  {row['count']:>6}  {row['level']:<8} {row['logger']:<28} {row['kind']}")
    out.append("outside calls (p50 / p95 / max ms, error rate):" if report["calls"] else
               "outside calls: none logged (successful calls are logged at DEBUG: SYSTEM__LOG_LEVEL=DEBUG)")
    for c in report["calls"]:
        out.append(f"  {c['service']:<9} {c['endpoint']:<28} {c['calls']:>6} call(s)  {_ms(c['p50_ms'])} / "
                   f"{_ms(c['p95_ms'])} / {_ms(c['max_ms'])}  errors {c['errors']} ({c['error_rate_pct']}%)")
    t = report["trading"]
    decisions = ", ".join(f"{k} {v}" for k, v in t["decisions"].items()) or "none"
    out.append(f"decisions: {decisions}")
    rate = f", win rate {t['win_rate_pct']}%" if t["win_rate_pct"] is not None else ""
    out.append(f"trades: {t['fills']} fill(s), {t['closed_trades']} closed trade(s), {t['wins']} won{rate}; "
               f"realized P&L {t['realized_pnl']}, fees {t['fees']}, net {t['net_pnl']}")
    return "\n".join(out) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
