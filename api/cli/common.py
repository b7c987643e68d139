"""What every CLI command shares: the --store and --config options, errors, opening the store."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from application.errors import ConfigurationError, StoreURLError
from application.trading_app import TradingApplication

StoreOption = Annotated[
    Optional[str],
    typer.Option("--store", help="Event store URL (sqlite:///PATH or postgresql://...); default EVENTSTORE__URL"),
]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="TOML settings file")]

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a clear error and exit (2: bad input or unusable store, 1: a check failed)."""
    # One line, as written: no wrapping at the terminal's width, no markup read into the message.
    err.print(f"error: {message}".replace("\n", " "), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_utc(text: str, option: str, expected: str = "an ISO-8601 time (e.g. 2024-01-31T12:00:00Z)") -> datetime:
    """An ISO-8601 time from the command line, in UTC (a naive one is taken as UTC); bad input exits 2."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {text!r} is not {expected}")
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def load_cli_settings(config: Path | None, overrides: dict | None = None):
    """Settings from defaults < TOML file < environment < CLI overrides; bad ones exit 2."""
    from api.bootstrap import configuration

    try:
        return configuration().load_settings(config_file=config, overrides=overrides)
    except ConfigurationError as exc:
        problems = "; ".join(str(problem) for problem in exc.errors)
        fail(f"invalid configuration: {problems} (run `tradecore config validate` for details)")


def resolve_store_url(store: str | None, config: Path | None) -> str:
    """--store wins; otherwise EVENTSTORE__URL / the TOML file / the default."""
    if store:
        return store
    return load_cli_settings(config).eventstore.url


@contextlib.contextmanager
def opened_store(url: str, read_only: bool = False) -> Iterator[TradingApplication]:
    """Open the store for one command and always close it.

    ``read_only``: the store must exist already; a missing SQLite file or PostgreSQL
    schema is one error naming the (redacted) URL, never a new empty store.
    """
    from api.bootstrap import open_store, store_location

    try:
        if read_only:
            store_location(url, existing=True)
        trading = open_store(url)
    except StoreURLError as exc:
        fail(str(exc))
    if not read_only:
        end_dead_runs_of(trading)
    try:
        yield trading
    finally:
        trading.close()


def end_dead_runs_of(trading: TradingApplication) -> None:
    """A process that opens the store for writing ends the runs whose process died (application/trading/dead_runs.py)."""
    from api.bootstrap import wall_clock
    from application.trading.dead_runs import end_dead_runs
    from api.bootstrap import process_liveness, this_process

    for run_id in end_dead_runs(trading, process_liveness(), f"process {this_process()}", wall_clock().now()):
        err.print(f"[yellow]run {run_id} had no RunEnded and its process is gone: recorded it as abandoned[/yellow]",
                  soft_wrap=True)
