"""CLI: `backtest` and `demo`: the trading loop over the candles the log holds.

`backtest --product P --granularity G [--from] [--to]` runs over the CandleClosed/CandleCorrected
events recorded for P and G (import them with `data import`, download them with `data fetch`).
`--data FILE` imports the file first (the same report as `data import`) and, without --from/--to,
runs over the file's span; `--bundled` imports the bundled BTC-USD 1h set first. When the log holds
no candles, or too few for the range and the indicators' warm-up, the command says what the log
holds and how to get more, exits 2 and records no run. A backtest records no candle again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store
from api.cli.data import checked_product, date_bound, import_file, read_file
from api.cli.errors import CommandFailed
from api.presentation import plain_number

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True, highlight=False)

DEMO_DIR = Path("var/demo")
BUNDLED = ("BTC-USD", "1h")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)
    app.command("demo")(demo_command)


FIAT = frozenset({"USD", "USDC", "USDT", "EUR", "GBP"})


def _money(value: Decimal, spec) -> str:
    """A figure in the run's quote currency: to the product's price step, at least cents (fiat) or 8 places (crypto)."""
    if spec is None:
        return f"{value:,.2f}"
    places = max(2 if spec.quote_currency in FIAT else 8, -spec.quote_increment.normalize().as_tuple().exponent)
    return f"{value:,.{places}f}"


def _summary_table(summary, store_url: str, run_id: uuid.UUID, elapsed: float, spec):
    from rich.table import Table

    quote = spec.quote_currency if spec is not None else ""
    table = Table(title=f"backtest run {run_id}", show_header=False)
    rows = [
        ("candles", f"{summary.candles:,}"),
        ("decisions", f"{summary.decisions:,}"),
        ("orders / fills / rejected", f"{summary.orders} / {summary.fills} / {summary.rejected}"),
        ("trades (round trips)", str(summary.trades)),
        ("win rate", f"{summary.win_rate_pct:.1f}%"),
        ("realized P&L", f"{_money(summary.realized_pnl, spec)} {quote}"),
        ("fees", f"{_money(summary.fees, spec)} {quote}"),
        ("max drawdown", f"{summary.max_drawdown_pct:.2f}%"),
        ("halts", str(summary.halts)),
        ("drawdown breaker", _breaker(summary)),
        ("initial equity", f"{_money(summary.initial_equity, spec)} {quote}"),
        ("final equity", f"{_money(summary.final_equity, spec)} {quote}"),
        ("events written", f"{summary.events:,} ({summary.events / max(summary.candles, 1):.2f} per candle) in "
                           f"{elapsed:.1f}s ({summary.candles / max(elapsed, 1e-9):,.0f} candles/s)"),
        ("store", store_url),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _summary_json(summary, store_url: str, run_id: uuid.UUID, spec) -> dict:
    return {
        "run_id": str(run_id), "store": store_url, "product": spec.product_id, "quote_currency": spec.quote_currency,
        "candles": summary.candles, "decisions": summary.decisions,
        "orders": summary.orders, "fills": summary.fills, "rejected": summary.rejected, "trades": summary.trades,
        "wins": summary.wins, "win_rate_pct": plain_number(summary.win_rate_pct.quantize(Decimal("0.01"))),
        "realized_pnl": plain_number(summary.realized_pnl), "fees": plain_number(summary.fees),
        "max_drawdown_pct": plain_number(summary.max_drawdown_pct.quantize(Decimal("0.0001"))), "halts": summary.halts,
        "initial_equity": plain_number(summary.initial_equity), "final_equity": plain_number(summary.final_equity),
        "events": summary.events,
        "drawdown_halted_at": summary.drawdown_halted_at.isoformat() if summary.drawdown_halted_at else None,
        "drawdown_halt_reason": summary.drawdown_halt_reason,
    }


def _breaker(summary) -> str:
    """What the drawdown breaker (risk.max_drawdown_pct) did in the run."""
    if summary.drawdown_halted_at is None:
        return "not tripped"
    return f"tripped {summary.drawdown_halted_at:%Y-%m-%d %H:%M} UTC: {summary.drawdown_halt_reason}"


def _more_candles_hint(product: str, granularity: str) -> str:
    hint = (f"get more with `tradecore data import FILE --product {product} --granularity {granularity}` or "
            f"`tradecore data fetch --product {product} --granularity {granularity} --from YYYY-MM-DD --to YYYY-MM-DD`")
    if (product, granularity) == BUNDLED:
        hint += ", or pass --bundled to import the bundled 2017-2019 set"
    return hint


def _other_series(trading) -> str:
    """What else the log holds (when it holds nothing of the asked product and bar size)."""
    from application.trading.candle_history import logged_series

    series = logged_series(trading)
    if not series:
        return ""
    return "; it holds " + ", ".join(f"{p} {g} ({n:,} candles)" for (p, g), n in series.items())


def run_backtest_command(
    *, data: Path | None, bundled: bool, product: str | None, granularity: str | None, date_from: str | None,
    date_to: str | None, strategy: str | None, initial_balance: Decimal | None, store: str | None,
    config: Path | None, as_json: bool,
) -> None:
    """Shared by `backtest` and `demo`."""
    import time

    from api.cli.config import effective_settings
    from api.bootstrap import (MissingSetting, bundled_candles, code_version, decision_model, loop_settings,
                               paper_exchange, store_location, this_process)
    from application.operations.config_service import recorded_overrides
    from application.trading.backtest import NotEnoughCandles, plan_backtest, run_planned_backtest
    from application.trading.candle_history import logged_candles
    from application.trading.products import product_spec_for

    if data is not None and bundled:
        fail("give either --data FILE or --bundled, not both")
    if product is not None:
        product = checked_product(product)
    overrides = {"eventstore.url": store, "trading.product": product, "trading.granularity": granularity,
                 "trading.strategy": strategy, "trading.initial_balance": initial_balance}
    settings = load_cli_settings(config, overrides)
    product, granularity = settings.trading.product, settings.trading.granularity
    start, end = date_bound(date_from, "--from", False), date_bound(date_to, "--to", True)
    if start is not None and end is not None and start >= end:
        fail(f"--from {date_from} is not before --to {date_to}")
    if bundled and (product, granularity) != BUNDLED:
        fail(f"the bundled set is BTC-USD 1h, not {product} {granularity}; for {product} use --data FILE, "
             f"`tradecore data import` or `tradecore data fetch`")
    bundled_path, bundled_spec = bundled_candles() if bundled else (None, None)
    source = bundled_path if bundled else data
    parsed = read_file(source, granularity) if source is not None else None
    run_id = uuid.uuid4()
    store_url = store_location(settings.eventstore.url).redacted()
    with opened_store(settings.eventstore.url) as trading:
        # Changes recorded with `tradecore config set` rank above env and file, below flags.
        settings = effective_settings(config, {k: v for k, v in overrides.items() if v is not None}, recorded_overrides(trading))
        try:
            model = decision_model(settings)
        except MissingSetting as exc:
            fail(str(exc))
        if parsed is not None:
            imported, _ = import_file(trading, source, parsed, product, granularity, False, store_url,
                                      out=err if as_json else console)  # --json: stdout is the summary only
            if bundled:  # its product's listing goes with it, unless the log knows a (newer) one already
                from application.trading.products import record_spec, recorded_spec
                from domain.events import EventMeta

                if recorded_spec(trading, bundled_spec.product_id) is None:
                    record_spec(trading, bundled_spec, EventMeta(imported[-1].end, actor="import"))
            if imported and start is None and end is None:  # the file's span, not everything the log holds
                start, end = imported[0].start, imported[-1].end
        logged = logged_candles(trading, product, granularity)
        try:
            plan = plan_backtest(logged, start, end, settings.data.indicator_warmup)
        except NotEnoughCandles as exc:
            held = "" if exc.logged.count else _other_series(trading)
            fail(f"{exc}{held}; {_more_candles_hint(product, granularity)}")
        spec, warning = product_spec_for(trading, settings, product, plan.warmup + plan.candles)
        if warning:
            err.print(f"warning: {warning}", markup=False)
        exchange = paper_exchange(settings, id_prefix=f"paper-{run_id.hex[:8]}")
        exchange.trade_by(spec)  # prices, sizes, minimums and balances in the product's own currencies
        exchange.deposit(spec.quote_currency, settings.trading.initial_balance)
        started = time.perf_counter()
        progress = _progress_bar(len(plan.candles), as_json)  # --json: none (stdout is the summary only)
        try:
            with progress or contextlib.nullcontext():
                summary = run_planned_backtest(
                    trading, plan, exchange=exchange, strategy=model,
                    settings=replace(loop_settings(settings, flush_every=500), quote_currency=spec.quote_currency, spec=spec,
                                     process=this_process()),
                    initial_balance=settings.trading.initial_balance, config_hash=settings.config_hash(),
                    code_version=code_version(), run_id=run_id, progress=progress.advance if progress else None,
                )
        except Exception as exc:
            raise _run_failed(exc, run_id, store_url) from exc
        elapsed = time.perf_counter() - started
    if as_json:
        print(json.dumps(_summary_json(summary, store_url, run_id, spec)))
    else:
        console.print(_summary_table(summary, store_url, run_id, elapsed, spec))
        console.print(f"events written to {store_url}")


class _ProgressBar:
    """The candles done, on stderr while the run lasts."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("candles", total=total)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def advance(self, candles: int) -> None:
        self.bar.advance(self.task, candles)


def _progress_bar(total: int, as_json: bool) -> _ProgressBar | None:
    return None if as_json else _ProgressBar(total)


def _run_failed(exc: Exception, run_id: uuid.UUID, store_url: str) -> CommandFailed:
    """One line for a run that failed: what, whether RunEnded made it into the log, what to do."""
    from api.cli.errors import explain

    unrecorded = any("recording RunEnded also failed" in note for note in getattr(exc, "__notes__", ()))
    ended = ("RunEnded could not be recorded either" if unrecorded
             else f"the run is recorded as ended (failed) in {store_url}")
    what, todo, code = explain(exc)
    if what.startswith("failed: "):
        what = what[len("failed: "):]
    return CommandFailed(f"backtest run {run_id} failed: {what}; {ended}", todo, code)


def backtest_command(
    data: Annotated[Optional[Path], typer.Option("--data", help="Import this candle file (CSV/Parquet) first, then run over its span")] = None,
    bundled: Annotated[bool, typer.Option("--bundled", help="Import the bundled Coinbase BTC-USD 1h candles first")] = False,
    product: Annotated[Optional[str], typer.Option(help="Product, BASE-QUOTE (default trading.product)")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Bar size (default trading.granularity)")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="First day (YYYY-MM-DD) or ISO time")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD), or ISO time (exclusive)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="rules or llm (default trading.strategy)")] = None,
    initial_balance: Annotated[Optional[Decimal], typer.Option("--initial-balance", help="Starting funds in the product's quote currency (default 10000)")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Backtest a strategy over the candles the log holds for a product and bar size; every event is recorded."""
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
    console.print(f"demo: importing the bundled Coinbase BTC-USD 1h candles (2017-2019) into {store} and backtesting them")
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
