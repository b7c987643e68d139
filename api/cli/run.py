"""CLI: `tradecore run --mode paper|live`: the bot itself, on live Coinbase candles.

paper: live candles, fills from the paper exchange; no keys needed.
live: real orders. Refuses to start unless the API keys are set, `--live` is
given and `SYSTEM__DRY_RUN=false`; the refusal names everything missing.
Ctrl-C or SIGTERM ends the run cleanly: the feed stops and `RunEnded` is recorded.
Unless `--no-api`, the REST API (a read node) runs in the same process.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import signal
import threading
import uuid
from pathlib import Path
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from api.cli.common import ConfigOption, StoreOption, fail, load_cli_settings, opened_store

console = Console(soft_wrap=True, highlight=False)


log = logging.getLogger("tradecore.run")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def _start_logging(settings, run_id: uuid.UUID, mode: str, model):
    """The run's log file (JSON lines, secrets masked), its run id and product on every line, metrics by mode."""
    from api.bootstrap import call_figures, process_log

    logs = process_log()
    logs.configure_logging(settings, long_running=True)
    logs.bind(run_id=run_id, product=settings.trading.product, mode=mode)
    call_figures().set_mode(mode)
    log.info("%s run %s starting: %s %s, strategy %s%s", mode, run_id, settings.trading.product,
             settings.trading.granularity, model.name, f" ({settings.llm.model})" if model.name == "llm" else "")
    return logs.current_log_file()


def live_refusals(settings, live_flag: bool) -> list[str]:
    """What a live run is missing (empty: it may start)."""
    missing = []
    if not live_flag:
        missing.append("the --live flag (it confirms real orders with real money)")
    if settings.system.dry_run:
        missing.append("SYSTEM__DRY_RUN=false (system.dry_run is true: live runs send real orders only when it is false)")
    if settings.exchange.api_key is None:
        missing.append("EXCHANGE__API_KEY (the CDP API key name)")
    if settings.exchange.api_secret is None:
        missing.append("EXCHANGE__API_SECRET (the CDP API private key)")
    return missing


class HealthService:
    """The health watch (thresholds, AlertRaised/AlertResolved, webhook) beside the loop."""

    def __init__(self, watch, interval_s: float):
        self.watch, self.interval_s = watch, interval_s

    def start(self) -> None:
        self.watch.start_background(self.interval_s)

    def stop(self) -> None:
        self.watch.stop()


class ReadNodeService:
    """The REST API beside the loop, started through api.http.server.start_read_node when it exists."""

    def __init__(self, store_url: str, settings, host: str, port: int, bot: str | None = None):
        self.store_url, self.settings, self.host, self.port = store_url, settings, host, port
        self.bot = bot  # its /health is this bot's (its run, its own halts, its alerts) unless ?bot= asks otherwise
        self.node = None

    def start(self) -> None:
        from api.http.server import start_read_node  # provided by the REST API module

        self.node = start_read_node(self.store_url, self.settings, self.host, self.port, bot=self.bot)
        console.print(f"REST API on {getattr(self.node, 'url', f'http://{self.host}:{self.port}')}")

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()


def run_command(
    mode: Annotated[str, typer.Option("--mode", help="paper (live candles, paper fills) or live (real orders)")],
    live: Annotated[bool, typer.Option("--live", help="Confirm real orders (live mode only)")] = False,
    product: Annotated[Optional[str], typer.Option(help="Product (default trading.product)")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Bar size (default trading.granularity)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="rules or llm (default trading.strategy)")] = None,
    initial_balance: Annotated[Optional[Decimal], typer.Option("--initial-balance", help="Paper starting cash")] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not start the REST API")] = False,
    no_health: Annotated[bool, typer.Option("--no-health", help="Do not run the health watch and alerts")] = False,
    host: Annotated[Optional[str], typer.Option(help="REST API bind address (default system.api_host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="REST API port (default system.api_port)")] = None,
    tick: Annotated[float, typer.Option(help="Seconds between control/venue polls while no candle closes")] = 1.0,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Trade on live Coinbase candles until Ctrl-C or SIGTERM (paper fills, or real orders with --mode live --live)."""
    from api.cli.config import effective_settings
    from application.trading.products import product_spec_for
    from api.bootstrap import (
        MissingSetting,
        code_version,
        coinbase_venue,
        decision_model,
        health_watch,
        loop_settings,
        notification_sink,
        operations_notifier,
        random_ids,
        store_location,
        this_process,
        wall_clock,
    )
    from application.health.api_calls import ApiCallMeter
    from application.trading.backtest import IncrementalIndicators
    from application.operations.config_service import recorded_overrides
    from application.trading.live_runner import LiveRunner
    from application.ports import VenueError
    from domain.control import RunMode

    if mode not in ("paper", "live"):
        fail(f"--mode {mode!r}: use paper or live (a backtest is `tradecore backtest`)")
    if tick <= 0:
        fail(f"--tick {tick}: must be > 0")
    flags = {"eventstore.url": store, "trading.product": product, "trading.granularity": granularity,
             "trading.strategy": strategy, "trading.initial_balance": initial_balance}
    settings = load_cli_settings(config, flags)
    if mode == "live":
        missing = live_refusals(settings, live)
        if missing:
            fail("live trading refused; missing:\n  - " + "\n  - ".join(missing))
    run_mode = RunMode(mode)
    with opened_store(settings.eventstore.url) as trading:
        settings = effective_settings(config, {k: v for k, v in flags.items() if v is not None},
                                      recorded_overrides(trading))
        if mode == "live" and live_refusals(settings, live):
            fail("live trading refused; missing:\n  - " + "\n  - ".join(live_refusals(settings, live)))
        try:
            model = decision_model(settings, metered=True)  # an LLM decision's latency and failure kind: metrics, log
        except MissingSetting as exc:
            fail(str(exc))
        run_id = uuid.uuid4()
        log_file = _start_logging(settings, run_id, mode, model)
        host = host or settings.system.api_host
        port = settings.system.api_port if port is None else port
        bot = settings.trading.bot_for(mode)  # every run belongs to a bot: its controls, alerts and orders
        s = dataclasses.replace(loop_settings(settings), bot_id=bot, process=this_process())
        clock = wall_clock()
        meter = ApiCallMeter(clock, timedelta(minutes=settings.monitoring.api_window_minutes))
        venue = coinbase_venue(settings, live=run_mode is RunMode.LIVE, product=s.product, granularity=s.granularity,
                               paper_prefix=f"paper-{run_id.hex[:8]}", meter=meter)
        # The product as the venue lists it (recorded in the log), else the settings' table, the log's, or inferred.
        spec, spec_warning = product_spec_for(trading, settings, s.product, venue=venue.market.product_spec,
                                              at=clock.now())
        if spec_warning:
            console.print(f"[yellow]{escape(spec_warning)}[/yellow]")
        s = dataclasses.replace(s, spec=spec, quote_currency=spec.quote_currency)
        if hasattr(venue.gateway, "trade_by"):  # paper fills by the product's grids, minimums and currencies
            venue.gateway.trade_by(spec)
            venue.gateway.deposit(spec.quote_currency, settings.trading.initial_balance)

        services: list = []
        if not no_health:
            # one sink for alerts and incidents: routed by severity (email for P0/P1), delivered off the loop
            sink = notification_sink(settings, source=f"bot {bot} ({mode} {settings.trading.product})")
            services.append(HealthService(health_watch(settings, trading, clock, api_meter=meter, sink=sink, scope=bot),
                                          settings.monitoring.check_interval_seconds))
            services.append(operations_notifier(settings, trading, clock, sink=sink))
        if not no_api and importlib.util.find_spec("api.http.server") is not None:
            services.append(ReadNodeService(settings.eventstore.url, settings, host, port, bot=bot))
        runner = LiveRunner(
            trading, mode=run_mode, exchange=venue.gateway, candles=venue.candles,
            history=lambda: venue.warmup(s.product, s.granularity, settings.data.candle_limit), strategy=model,
            indicators=IncrementalIndicators(), settings=s, clock=clock, ids=random_ids(),
            config_hash=settings.config_hash(), code_version=code_version(),
            initial_balance=settings.trading.initial_balance, venue=venue.account, run_id=run_id, tick_seconds=tick,
            services=services, on_event=lambda text: (console.print(text), log.info("%s", text)),
        )
        stop = threading.Event()

        def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
            console.print(f"{signal.Signals(signum).name} received: stopping after the current step")
            stop.set()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        console.print(f"bot {bot}: {mode} run {run_id} on {store_location(settings.eventstore.url).redacted()}; "
                      f"venue {settings.exchange.base_url}, feed {settings.exchange.ws_url}"
                      + (f"; log {log_file}" if log_file else ""))
        try:
            report = runner.run(stop)
        except VenueError as exc:
            log.error("run %s: the venue failed: %s", run_id, exc)
            fail(f"the venue failed: {exc}", 1)
        except ValueError as exc:
            log.error("run %s refused: %s", run_id, exc)
            fail(str(exc), 2)
        except BaseException:
            log.exception("run %s failed", run_id)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _anchor_at_end(trading, settings)
    summary = report.summary
    log.info("run %s %s: %d candle(s), %d decision(s), %d order(s), %d fill(s), %d rejected", run_id, report.status,
             summary.candles, summary.decisions, summary.orders, summary.fills, summary.rejected)
    console.print(f"run {run_id} {report.status}: {summary.candles} candle(s), {summary.decisions} decision(s), "
                  f"{summary.orders} order(s), {summary.fills} fill(s), {summary.rejected} rejected")
    for note in report.notes:
        console.print(f"note: {note}")


def _anchor_at_end(trading, settings) -> None:
    """With ``audit.anchor_key`` set, a signed anchor of the head the run leaves, in ``audit.anchor_dir``: a later
    cut, rollback or rewrite of what the run recorded shows in `tradecore audit verify --anchor DIR`."""
    key = settings.audit.anchor_key
    if key is None:
        return
    from api.bootstrap import notary, store_location, wall_clock
    from application.errors import StorageError
    from application.operations.anchors import LogNotIntact, anchor_head, intact_head

    try:
        try:
            report = intact_head(trading, notary())
        except LogNotIntact as exc:
            console.print(f"[red]no anchor written: the log is NOT intact (first bad notification id "
                          f"{exc.report.bad_notification_id}); run `tradecore audit verify`[/red]")
            return
        if "://" not in settings.audit.anchor_dir:
            Path(settings.audit.anchor_dir).mkdir(parents=True, exist_ok=True)  # a folder of anchors, one per run
        anchored = anchor_head(notary(), report.last_id, report.head, target=settings.audit.anchor_dir,
                               now=wall_clock().now(), store_name=store_location(settings.eventstore.url).redacted(),
                               key=key.get_secret_value().encode(), retention_days=settings.audit.anchor_retention_days)
    except (StorageError, OSError) as exc:
        console.print(f"[yellow]the run's anchor was not written: {escape(str(exc))}; run `tradecore audit anchor`[/yellow]")
        return
    console.print(f"anchor of notification {anchored.anchor.notification_id} written to {anchored.written.where}")
