"""The composition root: the only module of api/ that imports infrastructure/ (tests/unit/test_inward_dependencies.py).

The CLI, the REST app, bench/ and the tests build what they run through these functions: the event
store (``open_store``, ``store_location``, ``scratch_store``), the clock and ids (``wall_clock``, ``random_ids``),
the strategy (``decision_model``), the venues (``paper_exchange``, ``replay_exchange``, ``coinbase_venue`` and
its parts), the read model (``readmodel``), the health watch with its alert sinks (``health_watch``), and the
operations' ports: ``configuration``, ``process_log``, ``doctor_probes``, ``upkeep_kit``, ``backup_shelf``,
``notary``. Heavy adapters are imported inside the function that builds them, so a command loads only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings_terms import data_path, health_thresholds, loop_settings, notifier_rules, risk_limits  # noqa: F401
from application.errors import MissingSetting, StoreUnavailable, StoreURLError  # noqa: F401 - MissingSetting named here

if TYPE_CHECKING:  # heavy modules are imported by the function that builds with them
    from application.health.api_calls import ApiCallMeter
    from application.health.watch import HealthWatch
    from application.operations.doctor import DoctorProbes
    from application.operations.maintenance import UpkeepKit
    from application.ports import AlertSink, Clock, Configuration, IdSource, ProcessLog
    from application.trading_app import TradingApplication
    from infrastructure.monitoring.probe import HealthProbe

DEFAULT_STORE_URL = "sqlite:///var/events.db"


def open_store(url: str = DEFAULT_STORE_URL, batch_size: int = 1000) -> TradingApplication:
    """Open (creating if needed) the event store at URL as the trading application."""
    from application.trading_app import TradingApplication
    from infrastructure.eventstore.mapper import EventMapper
    from infrastructure.eventstore.store import eventsourcing_env, parse_store_url, store_setup_lock

    location = parse_store_url(url)
    try:
        with store_setup_lock(location):
            env = eventsourcing_env(location, TradingApplication.name)
            return TradingApplication(env=env, mapper=EventMapper(), batch_size=batch_size)
    except StoreURLError:
        raise
    except Exception as exc:  # connection refused, bad credentials, unreadable file
        raise StoreUnavailable(f"cannot open the event store {location.redacted()}: {exc}") from exc


def store_location(url: str, *, existing: bool = False):
    """The store URL parsed (``backend``, ``sqlite_path``, ``redacted()``); raises StoreURLError. ``existing``: raise
    StoreMissing unless it holds a tradecore log already (read-only commands never create one)."""
    from infrastructure.eventstore.store import parse_store_url, require_existing_store

    location = parse_store_url(url)
    if existing:
        require_existing_store(location)
    return location


def scratch_store() -> TradingApplication:
    """A throwaway in-memory store that keeps, in ``recorded``, what was written: verify and what-if re-execute a
    day into it, so the real log and read model are never written."""
    from application.trading_app import TradingApplication
    from infrastructure.eventstore.mapper import EventMapper

    class ScratchStore(TradingApplication):
        def record_in_order(self, events):
            self.recorded.extend(events)
            super().record_in_order(events)

    store = ScratchStore(env={"TRADECORE_PERSISTENCE_MODULE": "eventsourcing.popo"}, mapper=EventMapper())
    store.recorded = []
    return store


# --- the configuration and the process's log: read and set up here, once per process --------------
def configuration() -> Configuration:
    """The settings adapter (infrastructure/settings/loading.py): ``load_settings``, ``settings_errors``,
    ``setting_sources``, ``is_secret_path``, ``sounds_secret``; its settings answer ``config_hash()`` & co."""
    from infrastructure.settings import loading

    return loading


def process_log() -> ProcessLog:
    """This process's log, JSON lines with secrets masked (infrastructure/monitoring/logs.py)."""
    from infrastructure.monitoring import logs

    return logs


def doctor_probes() -> DoctorProbes:
    """The probes `tradecore doctor` runs: store, read model, venue, LLM, webhook, SMTP, disk, file modes."""
    from infrastructure.monitoring import doctor_probes as probes

    return probes


def upkeep_kit() -> UpkeepKit:
    """The weekly check's looks: file modes, secrets, SQLite/DuckDB upkeep, retention, anchors' age."""
    import infrastructure.maintenance as kit

    return kit


def call_figures():
    """This process's venue and LLM call figures: ``render()`` for /metrics, ``set_mode(mode)`` for a run."""
    from infrastructure.monitoring.calls import CALLS

    return CALLS


def event_topic(event_class: type) -> str:
    """The topic the store records an event class under (to page the log by event type)."""
    from infrastructure.eventstore.mapper import _topic

    return _topic(event_class)


def verify_log(trading):
    """Walk the log's hash chain: ``ok``, ``checked``, ``last_id``, ``head``, ``bad_notification_id``, ``problem``."""
    from infrastructure.eventstore.chain import verify_chain

    return verify_chain(trading.recorder)


def candle_file(path: Path, granularity: str, columns: dict[str, str] | None = None):
    """The candles of a CSV, CSV.gz or Parquet file, validated (a bad row refuses the file, naming it)."""
    from infrastructure.candles.files import read_candle_file

    return read_candle_file(path, granularity=granularity, columns=columns)


def bundled_candles():
    """The bundled BTC-USD hourly candles: ``(path, spec)``, the file and the product as its venue listed it."""
    from infrastructure.candles.bundled import BUNDLED_SPEC, bundled_candles_path

    return bundled_candles_path(), BUNDLED_SPEC


def wall_clock() -> Clock:
    """UTC wall-clock time for live commands (backtests and replays inject the candles' time)."""
    from infrastructure.clock import SystemClock

    return SystemClock()


def this_process() -> str:
    """The running process's identity (``host:pid:start``), recorded in RunStarted."""
    from infrastructure.process import this_process as identity

    return identity()


def process_liveness():
    """Whether a recorded process still runs (None: another host): for ending the runs of dead processes."""
    from infrastructure.process import process_alive

    return process_alive


def log_waker(store_url: str, stop):
    """How a read node learns of appends: LISTEN/NOTIFY on PostgreSQL (polling as the fallback), polling on SQLite."""
    from infrastructure.following.log_waker import log_waker as waker

    return waker(store_url, stop)


def candle_pages(client, product: str, granularity: str, start, end, now):
    """Pages of a product's closed candles from the venue's public endpoint (``data fetch``)."""
    from infrastructure.venues.coinbase.market_data import fetch_candles

    return fetch_candles(client, product, granularity, start, end, now)


def random_ids() -> IdSource:
    """Random ids for live commands (backtests and replays inject their own)."""
    from infrastructure.clock import RandomIds

    return RandomIds()


def readmodel(settings=None, *, path: str | Path | None = None, read_only: bool = False):
    """The DuckDB read model at ``path`` (default ``readmodel.path``), owned by this process; raises
    ``projections.engine.runner.ReadModelLocked`` when another process owns the file."""
    from projections.engine.runner import open_readmodel

    if path is None:
        if settings is None:
            raise ValueError("readmodel() needs the settings or a path")
        path = settings.readmodel.path
    return open_readmodel(path, read_only=read_only)


def code_version() -> str:
    """The installed tradecore version (recorded in RunStarted)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tradecore")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def paper_exchange(settings, id_prefix: str = "paper"):
    """The paper exchange with the configured fees, slippage and fill share."""
    from infrastructure.venues.paper.exchange import PaperExchange

    return PaperExchange(
        taker_fee_bps=settings.exchange.taker_fee_bps,
        maker_fee_bps=settings.exchange.maker_fee_bps,
        slippage_bps=settings.paper.slippage_bps,
        fill_volume_fraction=settings.paper.fill_volume_fraction,
        allow_shorts=settings.trading.allow_shorts,
        id_prefix=id_prefix,
    )


def replay_exchange(settings, log):
    """The paper exchange for re-executing a recorded day, with the venue id prefix the run used."""
    from application.replay.rerun import recorded_venue_prefix

    prefix = recorded_venue_prefix(log) or f"paper-{log.run.run_id.hex[:8]}"
    return paper_exchange(settings, id_prefix=prefix)


def decision_model(settings, strategy: str | None = None, now=None, *, metered: bool = False):
    """The strategy: `rules` (default, no key) or `llm` (needs LLM__API_KEY or LLM__BASE_URL); ``metered``: each
    LLM decision's latency and failure kind go to the call figures and the log (rules are not measured)."""
    name = strategy or settings.trading.strategy
    s = settings.risk
    if name == "rules":
        from domain.strategy_rules import RulesStrategy

        return RulesStrategy(
            size_pct=float(s.max_position_size_pct),
            stop_loss_pct=float(s.default_stop_loss_pct),
            take_profit_pct=float(s.default_take_profit_pct),
            allow_shorts=settings.trading.allow_shorts,
        )
    if name == "llm":
        from infrastructure.llm.strategy import llm_strategy_from_settings
        from infrastructure.monitoring.calls import MeteredDecisionModel

        if settings.llm.api_key is None and not settings.llm.base_url:
            raise MissingSetting("the llm strategy needs LLM__API_KEY (or LLM__BASE_URL for a local OpenAI-compatible server)")
        model = llm_strategy_from_settings(settings.llm, now=now)
        return MeteredDecisionModel(model) if metered else model
    raise MissingSetting(f"unknown strategy {name!r}: use rules or llm")


# --- the log's archives: backups, restores, exports, anchors -----------------------------------
def backup_shelf():
    """The archives' adapters (infrastructure/backup: folders or S3; SQLite or PostgreSQL restores)."""
    from application.operations.backups import BackupShelf
    from infrastructure.backup import export, leftovers, operations, storage

    return BackupShelf(operations.KINDS, storage.open_archives, storage.locate_archive, storage.list_archives,
                       operations.create_backup, operations.verify_archive, operations.restore_archive, operations.prune,
                       leftovers.find_leftovers, leftovers.backup_leftovers, leftovers.remove_leftover,
                       export.export_log, export.verify_export, export.manifest_path)


def notary():
    """Anchors signed with HMAC-SHA256 (infrastructure/eventstore/anchor.py), kept in files or S3 under Object Lock."""
    from application.errors import AnchorProblem
    from application.operations.anchors import Notary
    from infrastructure.backup.anchors import read_anchors, write_anchor
    from infrastructure.eventstore import anchor

    def translated(step):  # the anchor module's own AnchorProblem becomes the application's
        def call(*args):
            try:
                return step(*args)
            except anchor.AnchorProblem as exc:
                raise AnchorProblem(str(exc)) from None
        return call

    return Notary(verify_log, translated(anchor.sign_anchor), write_anchor, read_anchors, translated(anchor.read_anchor),
                  anchor.check_anchor)


# --- Coinbase (paper and live runs, data fetch) -------------------------------------------------


def coinbase_client(settings, *, authenticated: bool = True, meter=None):
    """The Coinbase REST client from [exchange]; without keys (or authenticated=False) only public endpoints work."""
    from infrastructure.venues.coinbase.client import CoinbaseClient
    from infrastructure.venues.coinbase.errors import RetryPolicy

    x = settings.exchange
    key = x.api_key.get_secret_value() if (authenticated and x.api_key) else None
    secret = x.api_secret.get_secret_value() if (authenticated and x.api_secret) else None
    if key is None or secret is None:
        key = secret = None
    return CoinbaseClient(key, secret, base_url=x.base_url, timeout=x.request_timeout, ca_bundle=x.ca_bundle,
                          retry=RetryPolicy(attempts=x.max_attempts, initial_wait=x.retry_wait_seconds), meter=meter)


def coinbase_candles(settings, client, *, product: str, granularity: str, authenticated: bool = False):
    """The live candles feed (WebSocket candles + heartbeats, REST backfill)."""
    from infrastructure.venues.coinbase.market_data import CandleStream

    x = settings.exchange
    key = x.api_key.get_secret_value() if (authenticated and x.api_key and x.api_secret) else None
    secret = x.api_secret.get_secret_value() if key else None
    return CandleStream(client, product, granularity, ws_url=x.ws_url, api_key=key, api_secret=secret,
                        stale_after=x.ws_stale_seconds, reconnect_wait=min(0.5, x.retry_wait_seconds),
                        rest_interval=min(1.0, 2 * x.retry_wait_seconds))


def coinbase_gateway(settings, client):
    """Real orders on Coinbase (needs keys)."""
    from infrastructure.venues.coinbase.execution import CoinbaseGateway

    return CoinbaseGateway(client, fill_wait=settings.exchange.fill_wait_seconds)


@dataclass
class CoinbaseVenue:
    """What a paper or live run trades on: Coinbase candles, and fills from the paper exchange or Coinbase.

    ``account`` is the venue to reconcile with (the Coinbase gateway in a live run, None in paper).
    """

    market: object
    candles: object
    gateway: object
    account: object | None

    def warmup(self, product: str, granularity: str, count: int) -> list:
        """The ``count`` closed candles before the venue's current time, to warm the indicators up."""
        from infrastructure.venues.coinbase.market_data import history

        now: datetime = self.market.server_time()
        return history(self.market, product, granularity, count, now)


def coinbase_venue(settings, *, live: bool, product: str, granularity: str, paper_prefix: str = "paper",
                   meter=None) -> CoinbaseVenue:
    """Coinbase candles (public, or authenticated in a live run) with paper fills, or real orders when ``live``."""
    market = coinbase_client(settings, authenticated=live, meter=meter)
    candles = coinbase_candles(settings, market, product=product, granularity=granularity)
    if live:
        gateway = coinbase_gateway(settings, coinbase_client(settings, meter=meter))
        return CoinbaseVenue(market, candles, gateway, gateway)
    return CoinbaseVenue(market, candles, paper_exchange(settings, id_prefix=paper_prefix), None)


# --- the health watch ------------------------------------------------------------
def alert_sink(settings, source: str = "") -> AlertSink:
    """The log always; plus the webhook when ``system.alert_webhook_url`` is set."""
    from infrastructure.monitoring.alert_sinks import alert_sink_from

    return alert_sink_from(settings, source)


def health_probe(settings, store: TradingApplication, clock: Clock, *, api_meter: ApiCallMeter | None = None,
                 cpu_interval: float | None = None, measure_process: bool = True, bot: str | None = None) -> HealthProbe:
    """The probe: ``cpu_interval`` blocks that long for a CPU reading (one-shot); ``measure_process``
    is False where this process is not the one to watch (a one-shot CLI)."""
    from infrastructure.monitoring.probe import probe_from

    return probe_from(settings, store, clock, data_path=data_path(settings), api_meter=api_meter,
                      cpu_interval=cpu_interval, measure_process=measure_process, bot=bot)


def health_watch(settings, store: TradingApplication, clock: Clock, *, api_meter: ApiCallMeter | None = None,
                 sink: AlertSink | None = None, scope: str = "tradecore") -> HealthWatch:
    """The health watch of a process: probe, thresholds and sinks from the settings."""
    from application.health.watch import HealthWatch

    return HealthWatch(
        store, health_probe(settings, store, clock, api_meter=api_meter, bot=None if scope == "tradecore" else scope),
        health_thresholds(settings),
        sink if sink is not None else alert_sink(settings, source=f"{settings.trading.mode} {settings.trading.product}"),
        clock, scope=scope,
    )


# --- notifications (incidents, routed alerts, the daily summary) -------------------------------
def notification_sink(settings, source: str = ""):
    """Every configured channel behind the severity router and the background delivery (never blocks).

    The log always hears everything; the webhook every severity; email (``[alerting]``) P0/P1 only.
    """
    from infrastructure.monitoring.notify import notification_sink_from

    return notification_sink_from(settings, source)


def operations_notifier(settings, store: TradingApplication, clock: Clock, sink=None):
    """The run's notifier: incidents at once, the trade-success-rate alert, the daily summary."""
    from application.operations.notifications import OperationsNotifier
    from infrastructure.monitoring.logs import correlated

    source = f"{settings.trading.mode} {settings.trading.product}"
    return OperationsNotifier(store, sink if sink is not None else notification_sink(settings, source), clock,
                              notifier_rules(settings), correlated=correlated)
