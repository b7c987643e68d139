"""CLI: `tradecore data fetch`: real candles from Coinbase's public candles endpoint into the log.

No keys needed. Requests are paged within the venue's 350-candle limit; only
closed candles are recorded (the venue's clock decides); a candle already in
the log is a no-op, a different one is refused (or, with --corrections,
recorded as CandleCorrected).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store, parse_utc

console = Console(soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    from api.cli.trading import data_app

    data_app.command("fetch")(fetch_command)


def _bound(text: str, option: str, end: bool) -> datetime:
    value = parse_utc(text, option, "a date (YYYY-MM-DD) or an ISO-8601 time")
    if len(text) == 10:  # a whole day; --to is inclusive
        return value + timedelta(days=1) if end else value
    return value


def fetch_command(
    date_from: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD) or ISO time")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD), or ISO time (exclusive)")],
    product: Annotated[str, typer.Option(help="Coinbase product, e.g. BTC-USD")] = "BTC-USD",
    granularity: Annotated[str, typer.Option(help="Bar size: 1m 5m 15m 30m 1h 2h 6h 1d")] = "1h",
    corrections: Annotated[bool, typer.Option("--corrections", help="Record a differing candle as CandleCorrected instead of refusing it")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Download candles from Coinbase (public endpoint, no keys) into the event log."""
    from api.bootstrap import coinbase_client
    from application.ports import VenueError
    from domain.events import EventMeta
    from domain.market import GRANULARITIES, granularity_delta
    from infrastructure.venues.coinbase.market_data import fetch_candles
    from infrastructure.eventstore.store import parse_store_url

    if granularity not in GRANULARITIES:
        fail(f"--granularity {granularity!r}: use one of {', '.join(GRANULARITIES)}")
    product = product.strip().upper()
    if "-" not in product:
        fail(f"--product {product!r}: expected BASE-QUOTE, e.g. BTC-USD")
    start, end = _bound(date_from, "--from", False), _bound(date_to, "--to", True)
    if start >= end:
        fail(f"--from {date_from} is not before --to {date_to}")
    step = granularity_delta(granularity)
    settings = load_cli_settings(config, {"eventstore.url": store})
    client = coinbase_client(settings, authenticated=False)
    recorded = duplicates = corrected = fetched = missing = requests = 0
    conflicts = []
    previous_end = None
    try:
        now = client.server_time()
        end = min(end, now)
        with opened_store(settings.eventstore.url) as trading:
            for page in fetch_candles(client, product, granularity, start, end, now):
                requests += 1
                if not page:
                    continue
                fetched += len(page)
                for candle in page:
                    if previous_end is not None and candle.start > previous_end:
                        missing += int((candle.start - previous_end) / step)
                    previous_end = candle.end
                result = trading.record_candles(page, EventMeta(page[-1].end, actor="data-fetch"),
                                                on_conflict="correct" if corrections else "refuse")
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
        f"{len(conflicts)} refused (differ from the recorded candle), {missing} bucket(s) without trades; "
        f"store {parse_store_url(settings.eventstore.url).redacted()}"
    )
    if conflicts:
        raise typer.Exit(1)
