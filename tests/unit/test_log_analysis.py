"""The log analyser's arithmetic: the period, kinds of problems, latency percentiles, error rates."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from application.operations.log_analysis import analyse, message_kind, percentile, read_lines, render_text
from application.operations.trade_record import TradeRecord

T = datetime(2026, 3, 1, tzinfo=timezone.utc)


def line(minute: int, level: str, message: str, **fields) -> str:
    return json.dumps({"time": T.replace(minute=minute).isoformat(), "level": level, "logger": "tradecore.calls",
                       "message": message, **fields})


def test_calls_per_endpoint_have_percentiles_and_error_rate_and_problems_are_grouped_by_kind():
    raw = [line(m, "DEBUG", "call ok", service="coinbase", endpoint="get_candles", latency_ms=float(m), outcome="ok")
           for m in range(1, 20)]
    raw.append(line(20, "WARNING", "call failed", service="coinbase", endpoint="get_candles", latency_ms=900.0,
                    outcome="error", error_kind="server"))
    raw.append(line(21, "ERROR", "order 1234: no answer from the venue: timeout"))
    raw.append(line(22, "ERROR", "order 9876: no answer from the venue: refused"))
    raw.append(line(59, "ERROR", "outside the period"))
    raw.append("not json")
    records, unreadable = read_lines(raw, T, T.replace(minute=30))
    report = analyse(records, TradeRecord(), since=T, until=T.replace(minute=30), files=["x.log"], unreadable=unreadable)
    (calls,) = report["calls"]
    assert (calls["calls"], calls["errors"], calls["error_rate_pct"]) == (20, 1, 5.0)
    assert (calls["p50_ms"], calls["p95_ms"], calls["max_ms"]) == (10.0, 19.0, 900.0)
    assert calls["errors_by_kind"] == {"server": 1}
    kinds = {row["kind"]: row["count"] for row in report["problems"]}
    assert kinds["order #"] == 2 and kinds["coinbase get_candles server"] == 1
    assert report["unreadable_lines"] == 1 and report["lines"] == 22
    assert "get_candles" in render_text(report)


def test_message_kind_drops_numbers_and_ids():
    assert message_kind("run 5d0c2a9e-1b2c-4d5e-8f90-0123456789ab ended: stopped") == "run # ended"
    assert percentile([], 0.5) is None and percentile([1.0, 2.0, 3.0], 0.5) == 2.0


def test_cli_reads_the_log_without_a_store_and_never_creates_one(tmp_path):
    import typer
    from typer.testing import CliRunner

    from api.cli.logs import register

    app = typer.Typer()
    register(app)

    log = tmp_path / "bot.log"
    log.write_text(line(1, "ERROR", "order 1: no answer from the venue: timeout") + "\n")
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(app, ["logs", "analyze", "--json", "--since", "2026-03-01T00:00:00Z", "--until",
                                           "2026-03-02T00:00:00Z", "--log-file", str(log), "--reports",
                                           str(tmp_path / "reports"), "--store", f"sqlite:///{missing}"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["problems"][0]["kind"] == "order #" and "no trading figures" in report["note"]
    assert not missing.exists() and (tmp_path / "reports" / "log_analysis_20260302.json").exists()
