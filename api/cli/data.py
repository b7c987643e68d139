"""CLI: `tradecore data import | fetch | product | show`: the log is the market-data catalogue.

- ``import FILE``: candles from a CSV (optionally .gz) or Parquet file; bad rows are reported by
  line and never enter the log; a candle already recorded is skipped, a different one refused (or,
  with --corrections, recorded as CandleCorrected).
- ``fetch``: real candles from Coinbase's public candles endpoint (no keys), paged within the venue's
  350-candle limit; only closed candles are recorded (the venue's clock decides). The product's spec
  (increments, minimums) is asked for and recorded too.
- ``product P``: ask Coinbase for a product's spec and record it (``ProductSpecRecorded``).
- ``show``: what the log holds for a product and bar size (first, last, count, gaps).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc

console = Console(soft_wrap=True, highlight=False)
data_app = typer.Typer(help="Market data: candles and product specs into the log, and what it holds.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def checked_product(product: str, option: str = "--product") -> str:
    """The product id, upper-cased; anything but BASE-QUOTE exits 2 with one line."""
    from domain.product import InvalidProduct, parse_product_id

    text = (product or "").strip().upper()
    try:
        parse_product_id(text)
    except InvalidProduct as exc:
        fail(f"{option}: {exc}")
    return text


def checked_granularity(granularity: str) -> str:
    from domain.market import GRANULARITIES

    if granularity not in GRANULARITIES:
        fail(f"--granularity {granularity!r}: use one of {', '.join(GRANULARITIES)}")
    return granularity


def date_bound(text: str | None, option: str, end: bool) -> datetime | None:
    """A date (a whole UTC day; --to inclusive) or an ISO time (exact)."""
    if text is None:
        return None
    value = parse_utc(text, option, "a date (YYYY-MM-DD) or an ISO-8601 time")
    if len(text) == 10:  # a whole day
        try:
            return value + timedelta(days=1) if end else value
        except OverflowError:
            fail(f"{option} {text}: the last day a range can end on is 9999-12-30")
    return value


def parse_columns(items: list[str] | None) -> dict[str, str]:
    mapping = {}
    for item in items or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            fail(f"--columns {item!r}: expected NAME=COLUMN, e.g. volume=VolumeFrom")
        mapping[name.strip().lower()] = column.strip()
    return mapping


def read_file(path: Path, granularity: str, columns: dict[str, str] | None = None):
    """The candle file, validated; a file that cannot be read exits 2 with one line."""
    from api.bootstrap import candle_file

    if not path.exists():
        fail(f"candle file {path} does not exist")
    if path.is_dir():
        fail(f"{path} is a folder; give a candle file (.csv, .csv.gz or .parquet)")
    try:
        return candle_file(path, granularity, columns)
    except ValueError as exc:
        message = str(exc)
        fail(message if str(path) in message else f"{path}: {message}")
    except OSError as exc:
        fail(f"{path}: cannot be read ({exc.strerror or exc})")


def import_file(trading, path: Path, parsed, product: str, granularity: str, corrections: bool, store_label: str,
                out: Console | None = None):
    """Record a parsed file's candles the log lacks and print the report (on ``out``); returns (candles, result)."""
    out = out or console
    from application.trading.backtest import candles_of
    from application.trading.candle_history import import_candles
    from domain.events import EventMeta

    candles = candles_of(parsed, product, granularity)
    at = candles[-1].end if candles else datetime.now(timezone.utc)
    result = import_candles(trading, candles, EventMeta(at, actor="import"),
                            on_conflict="correct" if corrections else "refuse")
    for row in parsed.rejected:
        out.print(f"[yellow]rejected[/yellow] line {row.line}: {row.reason}")
    for conflict in result.conflicts:
        out.print(f"[yellow]refused[/yellow] {conflict}")
    for gap in parsed.gaps:
        out.print(f"[dim]warning: gap of {gap.missing_bars} bar(s) between {gap.after.isoformat()} and "
                      f"{gap.before.isoformat()}[/dim]")
    out.print(
        f"{path}: {parsed.source_rows} rows read, {result.recorded} imported, "
        f"{result.duplicates + parsed.duplicates} duplicates skipped, {result.corrected} corrected, "
        f"{len(parsed.rejected)} rejected, {len(result.conflicts)} refused (differ from the recorded candle), "
        f"{len(parsed.gaps)} gap(s); store {store_label}"
    )
    return candles, result


@data_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV (optionally .gz) or Parquet file of candles")],
    product: Annotated[str, typer.Option(help="Product the candles are of, BASE-QUOTE")] = "BTC-USD",
    granularity: Annotated[str, typer.Option(help="Bar size: 1m 5m 15m 30m 1h 2h 6h 1d")] = "1h",
    columns: Annotated[Optional[list[str]], typer.Option("--columns", help="Map a column: volume=VolumeFrom (repeatable)")] = None,
    corrections: Annotated[bool, typer.Option("--corrections", help="Record a differing candle as CandleCorrected instead of refusing it")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Import candles: bad rows are reported by line and never enter the log; re-imports change nothing."""
    from api.bootstrap import store_location

    product, granularity = checked_product(product), checked_granularity(granularity)
    settings = load_cli_settings(config, {"eventstore.url": store})
    parsed = read_file(file, granularity, parse_columns(columns))
    with opened_store(settings.eventstore.url) as trading:
        _, result = import_file(trading, file, parsed, product, granularity, corrections,
                                store_location(settings.eventstore.url).redacted())
    if parsed.rejected or result.conflicts:
        raise typer.Exit(1)


@data_app.command("show")
def show_command(
    product: Annotated[Optional[str], typer.Option(help="Product, BASE-QUOTE (default: list every product and bar size)")] = None,
    granularity: Annotated[str, typer.Option(help="Bar size: 1m 5m 15m 30m 1h 2h 6h 1d")] = "1h",
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """What the log holds: every product and bar size, or for one: first, last, count, gaps, and its spec."""
    from application.trading.candle_history import logged_candles, logged_series
    from application.trading.products import recorded_spec

    settings = load_cli_settings(config, {"eventstore.url": store})
    if product is None:
        with opened_store(settings.eventstore.url) as trading:
            series = logged_series(trading)
        for (name, bars), count in series.items():
            console.print(f"{name} {bars}: {count:,} candles")
        if not series:
            console.print("the log holds no candles (`tradecore data import FILE`, `tradecore data fetch`)")
        return
    product, granularity = checked_product(product), checked_granularity(granularity)
    with opened_store(settings.eventstore.url) as trading:
        logged = logged_candles(trading, product, granularity)
        spec = recorded_spec(trading, product)
    console.print(logged.describe())
    for gap in logged.gaps()[:20]:
        console.print(f"  gap of {gap.missing_bars} bar(s) between {gap.after.isoformat()} and {gap.before.isoformat()}")
    console.print(f"spec: {_spec_text(spec)}" if spec else f"spec: none recorded (`tradecore data product {product}`)")


def _spec_text(spec) -> str:
    from api.presentation import plain_number as n

    return (f"{spec.product_id} ({spec.source}): price step {n(spec.quote_increment)} {spec.quote_currency}, size step "
            f"{n(spec.base_increment)} {spec.base_currency}, minimum size {n(spec.min_base_size)} {spec.base_currency}, "
            f"minimum funds {n(spec.min_quote_funds)} {spec.quote_currency}")


@data_app.command("product")
def product_command(
    product: Annotated[str, typer.Argument(help="Coinbase product, e.g. XLM-USD or ETH-BTC")],
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Ask Coinbase for a product's spec (increments, minimums) and record it in the log."""
    from api.bootstrap import coinbase_client
    from application.ports import VenueError
    from application.trading.products import record_spec
    from domain.events import EventMeta

    product = checked_product(product, "PRODUCT")
    settings = load_cli_settings(config, {"eventstore.url": store})
    client = coinbase_client(settings)
    try:
        spec = client.product_spec(product)
        now = client.server_time()
    except VenueError as exc:
        fail(f"Coinbase product {product}: {exc}", 1)
    with opened_store(settings.eventstore.url) as trading:
        changed = record_spec(trading, spec, EventMeta(now, actor="data-product"))
    console.print(f"{_spec_text(spec)}; {'recorded' if changed else 'already recorded'}")


def fetch_command(
    date_from: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD) or ISO time")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD), or ISO time (exclusive)")],
    product: Annotated[str, typer.Option(help="Coinbase product, e.g. BTC-USD")] = "BTC-USD",
    granularity: Annotated[str, typer.Option(help="Bar size: 1m 5m 15m 30m 1h 2h 6h 1d")] = "1h",
    corrections: Annotated[bool, typer.Option("--corrections", help="Record a differing candle as CandleCorrected instead of refusing it")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Download candles from Coinbase (public endpoint, no keys) into the event log, and the product's spec."""
    from api.bootstrap import candle_pages, coinbase_client
    from application.ports import VenueError
    from application.trading.candle_history import import_candles, logged_candles
    from application.trading.products import record_spec
    from domain.events import EventMeta
    from api.bootstrap import store_location
    from domain.market import granularity_delta

    product, granularity = checked_product(product), checked_granularity(granularity)
    start, end = date_bound(date_from, "--from", False), date_bound(date_to, "--to", True)
    if start >= end:
        fail(f"--from {date_from} is not before --to {date_to}")
    step = granularity_delta(granularity)
    settings = load_cli_settings(config, {"eventstore.url": store})
    client = coinbase_client(settings, authenticated=False)
    recorded = duplicates = corrected = fetched = missing = requests = 0
    conflicts = []
    previous_end = None
    spec_note = ""
    try:
        now = client.server_time()
        end = min(end, now)
        with opened_store(settings.eventstore.url) as trading:
            try:
                spec = client.product_spec(product)
                spec_note = "; spec " + ("recorded" if record_spec(trading, spec, EventMeta(now, actor="data-fetch"))
                                         else "unchanged")
            except VenueError as exc:
                spec_note = f"; spec not recorded ({exc})"
            logged = logged_candles(trading, product, granularity)
            for page in candle_pages(client, product, granularity, start, end, now):
                requests += 1
                if not page:
                    continue
                fetched += len(page)
                for candle in page:
                    if previous_end is not None and candle.start > previous_end:
                        missing += int((candle.start - previous_end) / step)
                    previous_end = candle.end
                result = import_candles(trading, page, EventMeta(page[-1].end, actor="data-fetch"),
                                        on_conflict="correct" if corrections else "refuse", logged=logged)
                logged.candles.extend(page)  # later pages are compared with these too
                recorded += result.recorded
                duplicates += result.duplicates
                corrected += result.corrected
                conflicts.extend(result.conflicts)
    except VenueError as exc:
        fail(f"Coinbase candles {product} {granularity}: {exc}", 1)
    for conflict in conflicts:
        console.print(f"[yellow]refused[/yellow] {conflict}")
    console.print(
        f"{product} {granularity} {start.isoformat()} .. {end.isoformat()}: {fetched} candle(s) in {requests} "
        f"request(s), {recorded} recorded, {duplicates} already in the log, {corrected} corrected, "
        f"{len(conflicts)} refused (differ from the recorded candle), {missing} bucket(s) without trades"
        f"{spec_note}; store {store_location(settings.eventstore.url).redacted()}"
    )
    if conflicts:
        raise typer.Exit(1)


data_app.command("fetch")(fetch_command)
