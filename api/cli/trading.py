"""CLI: `data import`, `backtest` and `demo`."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc
from domain.events import EventMeta

console = Console(soft_wrap=True)
data_app = typer.Typer(help="Market data: import candle files into the log.", no_args_is_help=True)

DEMO_DIR = Path("var/demo")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("backtest")(backtest_command)
    app.command("demo")(demo_command)


def _parse_columns(items: list[str] | None) -> dict[str, str]:
    mapping = {}
    for item in items or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            fail(f"--columns {item!r}: expected NAME=COLUMN, e.g. volume=VolumeFrom")
        mapping[name.strip().lower()] = column.strip()
    return mapping


def _read(path: Path, granularity: str, columns: dict[str, str] | None = None):
    from infrastructure.candles.files import read_candle_file

    if not path.exists():
        fail(f"candle file {path} does not exist")
    try:
        return read_candle_file(path, granularity=granularity, columns=columns)
    except ValueError as exc:
        fail(f"{path}: {exc}")


def _candles(frame, product: str, granularity: str):
    from application.trading.backtest import candles_of

    return candles_of(frame, product, granularity)


@data_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV (optionally .gz) or Parquet file of candles")],
    product: Annotated[str, typer.Option(help="Product the candles are of")] = "BTC-USD",
    granularity: Annotated[str, typer.Option(help="Bar size: 1m 5m 15m 30m 1h 2h 6h 1d")] = "1h",
    columns: Annotated[Optional[list[str]], typer.Option("--columns", help="Map a column: volume=VolumeFrom (repeatable)")] = None,
    corrections: Annotated[bool, typer.Option("--corrections", help="Record a differing candle as CandleCorrected instead of refusing it")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Import candles: bad rows are reported by line and never enter the log; re-imports change nothing."""
    settings = load_cli_settings(config, {"eventstore.url": store})
    parsed = _read(file, granularity, _parse_columns(columns))
    candles = _candles(parsed.frame, product, granularity)
    with opened_store(settings.eventstore.url) as trading:
        at = candles[-1].end if candles else datetime.now(timezone.utc)
        result = trading.record_candles(candles, EventMeta(at, actor="import"), on_conflict="correct" if corrections else "refuse")
    for row in parsed.rejected:
        console.print(f"[yellow]rejected[/yellow] line {row.line}: {row.reason}", highlight=False)
    for conflict in result.conflicts:
        console.print(f"[yellow]refused[/yellow] {conflict}", highlight=False)
    for gap in parsed.gaps:
        console.print(
            f"[dim]warning: gap of {gap.missing_bars} bar(s) between {gap.after.isoformat()} and {gap.before.isoformat()}[/dim]",
            highlight=False,
        )
    console.print(
        f"{file}: {parsed.source_rows} rows read, {result.recorded} imported, "
        f"{result.duplicates + parsed.duplicates} duplicates skipped, {result.corrected} corrected, "
        f"{len(parsed.rejected)} rejected, {len(result.conflicts)} refused (differ from the recorded candle), "
        f"{len(parsed.gaps)} gap(s); store {settings.eventstore.url}",
        highlight=False,
    )
    if parsed.rejected or result.conflicts:
        raise typer.Exit(1)


def _parse_bound(text: str | None, option: str, end: bool) -> datetime | None:
    """A date (whole UTC day, --to inclusive) or an ISO time (exact)."""
    if text is None:
        return None
    value = parse_utc(text, option, "a date (YYYY-MM-DD) or an ISO-8601 time")
    if len(text) == 10:  # a whole day
        return value + timedelta(days=1) if end else value
    return value


def _summary_table(summary, store_url: str, run_id: uuid.UUID, elapsed: float) -> Table:
    table = Table(title=f"backtest run {run_id}", show_header=False)
    rows = [
        ("candles", f"{summary.candles:,}"),
        ("decisions", f"{summary.decisions:,}"),
        ("orders / fills / rejected", f"{summary.orders} / {summary.fills} / {summary.rejected}"),
        ("trades (round trips)", str(summary.trades)),
        ("win rate", f"{summary.win_rate_pct:.1f}%"),
        ("realized P&L", f"{summary.realized_pnl:,.2f}"),
        ("fees", f"{summary.fees:,.2f}"),
        ("max drawdown", f"{summary.max_drawdown_pct:.2f}%"),
        ("halts", str(summary.halts)),
        ("initial equity", f"{summary.initial_equity:,.2f}"),
        ("final equity", f"{summary.final_equity:,.2f}"),
        ("events written", f"{summary.events:,} in {elapsed:.1f}s ({summary.candles / elapsed:,.0f} candles/s)"),
        ("store", store_url),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _summary_json(summary, store_url: str, run_id: uuid.UUID) -> dict:
    return {
        "run_id": str(run_id), "store": store_url, "candles": summary.candles, "decisions": summary.decisions,
        "orders": summary.orders, "fills": summary.fills, "rejected": summary.rejected, "trades": summary.trades,
        "wins": summary.wins, "win_rate_pct": str(summary.win_rate_pct.quantize(Decimal("0.01"))),
        "realized_pnl": str(summary.realized_pnl), "fees": str(summary.fees),
        "max_drawdown_pct": str(summary.max_drawdown_pct.quantize(Decimal("0.0001"))), "halts": summary.halts,
        "initial_equity": str(summary.initial_equity), "final_equity": str(summary.final_equity), "events": summary.events,
    }


def run_backtest_command(
    *, data: Path | None, bundled: bool, product: str | None, granularity: str | None, date_from: str | None,
    date_to: str | None, strategy: str | None, initial_balance: Decimal | None, store: str | None,
    config: Path | None, as_json: bool,
) -> None:
    """Shared by `backtest` and `demo`."""
    import time

    from api.cli.config import effective_settings
    from api.bootstrap import MissingSetting, code_version, decision_model, loop_settings, paper_exchange
    from application.operations.config_service import recorded_overrides
    from application.trading.backtest import run_backtest
    from infrastructure.candles.files import bundled_candles_path
    from infrastructure.eventstore.store import parse_store_url
    from infrastructure.settings.loading import config_hash

    overrides = {"eventstore.url": store, "trading.product": product, "trading.granularity": granularity,
                 "trading.strategy": strategy, "trading.initial_balance": initial_balance}
    settings = load_cli_settings(config, overrides)
    if data is not None and bundled:
        fail("give either --data FILE or --bundled, not both")
    product, granularity = settings.trading.product, settings.trading.granularity
    if data is None:
        if (product, granularity) != ("BTC-USD", "1h"):
            fail(f"the bundled data is BTC-USD 1h; for {product} {granularity} pass --data FILE")
        data = bundled_candles_path()
    parsed = _read(data, granularity)
    frame = parsed.frame
    start, end = _parse_bound(date_from, "--from", False), _parse_bound(date_to, "--to", True)
    if start is not None:
        frame = frame[frame.index >= start]
    if end is not None:
        frame = frame[frame.index < end]
    if frame.empty:
        fail(f"no candles in {data} between {date_from or 'the start'} and {date_to or 'the end'}")
    if parsed.rejected:
        console.print(f"[yellow]{len(parsed.rejected)} bad row(s) in {data} skipped[/yellow] (first: line {parsed.rejected[0].line}: {parsed.rejected[0].reason})")
    try:
        model = decision_model(settings)
    except MissingSetting as exc:
        fail(str(exc))
    run_id = uuid.uuid4()
    store_url = parse_store_url(settings.eventstore.url).redacted()
    with opened_store(settings.eventstore.url) as trading:
        # Changes recorded with `tradecore config set` rank above env and file, below flags.
        settings = effective_settings(config, {k: v for k, v in overrides.items() if v is not None}, recorded_overrides(trading))
        try:
            model = decision_model(settings)
        except MissingSetting as exc:
            fail(str(exc))
        started = time.perf_counter()
        progress = Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), disable=as_json, transient=True)
        with progress:
            task = progress.add_task("candles", total=len(frame))
            summary = run_backtest(
                trading, frame, exchange=paper_exchange(settings, id_prefix=f"paper-{run_id.hex[:8]}"),
                strategy=model, settings=loop_settings(settings, flush_every=500),
                initial_balance=settings.trading.initial_balance, config_hash=config_hash(settings),
                code_version=code_version(), run_id=run_id, progress=lambda n: progress.advance(task, n),
            )
        elapsed = time.perf_counter() - started
    if as_json:
        print(json.dumps(_summary_json(summary, store_url, run_id)))
    else:
        console.print(_summary_table(summary, store_url, run_id, elapsed))
        console.print(f"events written to {store_url}")


def backtest_command(
    data: Annotated[Optional[Path], typer.Option("--data", help="Candle file (CSV/Parquet)")] = None,
    bundled: Annotated[bool, typer.Option("--bundled", help="The bundled Coinbase BTC-USD 1h candles (the default)")] = False,
    product: Annotated[Optional[str], typer.Option(help="Product (default trading.product)")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Bar size (default trading.granularity)")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="First day (YYYY-MM-DD) or ISO time")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD), or ISO time (exclusive)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="rules or llm (default trading.strategy)")] = None,
    initial_balance: Annotated[Optional[Decimal], typer.Option("--initial-balance", help="Starting cash (default 10000)")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Backtest a strategy over a candle history; every event is recorded in the store."""
    run_backtest_command(data=data, bundled=bundled, product=product, granularity=granularity, date_from=date_from,
                         date_to=date_to, strategy=strategy, initial_balance=initial_balance, store=store,
                         config=config, as_json=as_json)


def demo_command(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo's own store goes (emptied first)")] = DEMO_DIR,
) -> None:
    """The main job on the embedded default: backtest the bundled data with the rules strategy into a fresh store."""
    if directory.exists():
        shutil.rmtree(directory)  # the demo's scratch store only, never var/events.db
    directory.mkdir(parents=True)
    store = f"sqlite:///{directory / 'events.db'}"
    console.print(f"demo: backtesting the bundled Coinbase BTC-USD 1h candles (2017-2019) into {store}")
    run_backtest_command(data=None, bundled=True, product="BTC-USD", granularity="1h", date_from=None, date_to=None,
                         strategy="rules", initial_balance=None, store=store, config=None, as_json=False)
    _demo_read_model(store, directory / "readmodel.duckdb")
    console.print(f"next: tradecore events --store {store} --type OrderFilled --limit 10")
    console.print(f"      READMODEL__PATH={directory / 'readmodel.duckdb'} tradecore report daily --store {store}")
    console.print(f"      READMODEL__PATH={directory / 'readmodel.duckdb'} tradecore query \"SELECT day, equity, net_pnl FROM pnl_daily ORDER BY day DESC LIMIT 5\" --store {store}")


def _demo_read_model(store: str, path: Path) -> None:
    """Build the demo's DuckDB read model from its log and print what it holds."""
    import time

    from api.bootstrap import readmodel
    from projections.engine import runner
    from projections.reading.reports import performance_report

    started = time.perf_counter()
    with opened_store(store) as trading:
        con = readmodel(path=path)
        try:
            events = runner.catch_up(trading, con, runner.ALL_PROJECTIONS, 20_000)
            tables = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                      for t in ("candles", "decisions", "orders", "fills", "pnl_daily", "equity_curve")}
            report = performance_report(con, days=100_000)
        finally:
            con.close()
    console.print(f"read model {path}: {events:,} events projected in {time.perf_counter() - started:.1f}s; "
                  + ", ".join(f"{t} {n:,}" for t, n in tables.items()))
    console.print(f"from the read model: equity {report['start_equity']} -> {report['end_equity']} ({report['return_pct']}%), "
                  f"max drawdown {report['max_drawdown_pct']}%, win rate {report['win_rate_pct']}% over {report['trades']} trades, "
                  f"fees {report['fees']}")
