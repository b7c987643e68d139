"""CLI: `report daily`, `report performance` and `query` (read-only SQL), with `--as-of` time travel."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc
from api.presentation import plain

console = Console(soft_wrap=True)
report_app = typer.Typer(help="Reports from the read model (daily, performance).", no_args_is_help=True)

AsOfOption = Annotated[
    Optional[str],
    typer.Option("--as-of", help="Answer from the read model as it stood at a notification id or an ISO time (built in memory)"),
]
# Analyst SQL: one plain query (SELECT, WITH ... SELECT, FROM ..., VALUES, DESCRIBE, SHOW, SUMMARIZE),
# as DuckDB's own parser classifies it. EXPLAIN is refused: EXPLAIN ANALYZE runs its statement.
READ_ONLY_STATEMENTS = {"SELECT"}


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.command("query")(query_command)


@contextlib.contextmanager
def _read_model(
    store: str | None, config: Path | None, as_of: str | None, readmodel: Path | None = None, sandboxed: bool = False
) -> Iterator[Any]:
    from projections.reading.access import NoReadModel, notification_at, open_for_reading

    settings = load_cli_settings(config, {"eventstore.url": store})
    with opened_store(settings.eventstore.url, read_only=True) as trading:
        until = None
        if as_of is not None:
            until = _as_of_id(trading, as_of, notification_at)
        try:
            model = open_for_reading(trading, readmodel or settings.readmodel.path, settings.readmodel.batch_size, until, sandboxed)
        except NoReadModel as exc:
            fail(str(exc))
        try:
            yield model
        finally:
            model.close()


def _as_of_id(trading: Any, text: str, notification_at: Any) -> int:
    if text.isdigit():
        return int(text)
    return notification_at(trading, parse_utc(text, "--as-of", "a notification id nor an ISO-8601 time"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _parse_day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r} is not a date (YYYY-MM-DD)")


@report_app.command("daily")
def daily_command(
    day: Annotated[Optional[str], typer.Option("--date", help="UTC day (default: the run's latest day)")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run id (default: the latest run with P&L that day)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    reports_dir: Annotated[Path, typer.Option("--reports-dir", help="Where daily_report_YYYYMMDD.json is written")] = Path("reports"),
    as_of: AsOfOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """The operations manual's daily report; also written to reports/daily_report_YYYYMMDD.json."""
    from projections.reading.reports import NoData, daily_report

    wanted = _parse_day(day)
    with _read_model(store, config, as_of) as model:
        try:
            report = daily_report(model.con, wanted, run)
        except NoData as exc:
            fail(str(exc), code=1)
        report["source"] = model.source
    reports_dir.mkdir(parents=True, exist_ok=True)
    target = reports_dir / f"daily_report_{report['date'].replace('-', '')}.json"
    target.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    if as_json:
        print(json.dumps(report, default=_json_default))
        return
    t, r = report["trading_summary"], report["risk_analysis"]
    console.print(f"[bold]Daily report {report['date']}[/bold]  run {report['run']['run_id']} ({report['run']['mode']}, {report['run']['strategy']})")
    console.print(f"  trades executed {t['trades_executed']}, round trips {t['round_trips_closed']}, success rate {t['success_rate_pct'] or '-'}%")
    console.print(f"  daily P&L {t['daily_pnl']} (realized {t['realized_pnl']}, unrealized {t['unrealized_pnl']}, fees {t['fees']}), equity {t['equity']}")
    held = ", ".join(f"{p['product']} {p['quantity']} @ {p['average_entry']}" for p in t["current_positions"]) or "none"
    console.print(f"  open positions: {held}")
    console.print(f"  daily loss used {r['daily_loss_used_pct']}% of {r['max_daily_loss_pct']}% ({r['pct_of_limit_used']}% of the limit), risk score {r['risk_score']} ({r['risk_level']})")
    console.print("  recommendations:")
    for i, text in enumerate(report["recommendations"], 1):
        console.print(f"    {i}. {text}", markup=False)
    console.print(f"[dim]written to {target}; from {model.source}[/dim]")


@report_app.command("performance")
def performance_command(
    days: Annotated[int, typer.Option("--days", min=1, max=100_000, help="Last N days of the run")] = 30,
    run: Annotated[Optional[str], typer.Option("--run", help="Run id (default: the latest run)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_of: AsOfOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Equity, drawdown, win rate, fees, and a per-day table."""
    from projections.reading.reports import NoData, performance_report

    with _read_model(store, config, as_of) as model:
        try:
            report = performance_report(model.con, days, run)
        except NoData as exc:
            fail(str(exc), code=1)
    if as_json:
        print(json.dumps(report, default=_json_default))
        return
    console.print(
        f"[bold]Performance {report['from']} .. {report['to']}[/bold] run {report['run']['run_id']}: equity {report['start_equity']} -> "
        f"{report['end_equity']} ({report['return_pct']}%), max drawdown {report['max_drawdown_pct']}%, win rate "
        f"{report['win_rate_pct'] or '-'}% over {report['trades']} trades, fees {report['fees']}"
    )
    table = Table("day", "equity", "net P&L", "fees", "trades", "wins")
    for row in report["days"]:
        table.add_row(row["day"], row["equity"], row["net_pnl"], row["fees"], str(row["trades"]), str(row["wins"]))
    console.print(table)


def query_command(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement over the read-model tables")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json | parquet")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", help="Write here instead of stdout (required for parquet)")] = None,
    as_of: AsOfOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Run one read-only query on the read model: anything but a plain SELECT is refused, and files stay out of reach."""
    import duckdb

    if fmt not in ("table", "csv", "json", "parquet"):
        fail(f"--format {fmt!r}: use table, csv, json or parquet")
    if fmt == "parquet" and output is None:
        fail("--format parquet needs --output FILE")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        fail(f"SQL does not parse: {exc}")
    if len(statements) != 1:
        fail(f"give exactly one statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        fail(f"refused: {kind} statements are not allowed; `tradecore query` runs one plain query (SELECT or WITH ... SELECT)")
    # The connection itself is sealed too: read-only, no file or network access, configuration locked.
    with _read_model(store, config, as_of, sandboxed=True) as model:
        # Belt and braces: the statement runs in a transaction that is always rolled back.
        model.con.execute("BEGIN TRANSACTION")
        try:
            table = model.con.sql(sql).to_arrow_table()
        except duckdb.PermissionException as exc:
            fail(f"refused: {exc}; `tradecore query` reads only the read-model tables, never files")
        except duckdb.Error as exc:
            fail(f"query failed: {exc}")
        finally:
            model.con.execute("ROLLBACK")
    _write(table, fmt, output)


def _write(table: Any, fmt: str, output: Path | None) -> None:
    rows = table.to_pylist()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        console.print(f"{len(rows)} row(s) written to {output}")
        return
    if fmt == "json":
        text = "".join(json.dumps(row, default=_json_default) + "\n" for row in rows)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(table.column_names)
        # Full precision, positional notation: 0 and 0.00000001, never 0E-18; empty for NULL.
        writer.writerows([[plain(v) for v in row.values()] for row in rows])
        text = buffer.getvalue()
    else:
        pretty = Table(*table.column_names)
        for row in rows:
            pretty.add_row(*(plain(v) for v in row.values()))
        if output is None:
            console.print(pretty)
            console.print(f"[dim]{len(rows)} row(s)[/dim]")
            return
        buffer = io.StringIO()
        Console(file=buffer, width=200).print(pretty)
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"{len(rows)} row(s) written to {output}")
