"""Builds the health watch from the settings (a composition helper in the style of api/wiring.py).

``tradecore run`` wires it as::

    meter = ApiCallMeter(clock, timedelta(minutes=settings.monitoring.api_window_minutes))
    watch = health_watch(settings, store, clock, api_meter=meter)   # the exchange adapter feeds meter
    watch.start_background(settings.monitoring.check_interval_seconds)
    ...
    watch.stop()
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from application.api_calls import ApiCallMeter
from application.health import HealthThresholds, HealthWatch, Threshold, market_data_threshold
from application.ports import AlertSink, Clock
from application.trading_app import TradingApplication
from infrastructure.alerts import FanOutAlertSink, LogAlertSink, WebhookAlertSink
from infrastructure.health_probe import HealthProbe
from infrastructure.settings_sections import GRANULARITY_SECONDS


def health_thresholds(settings, granularity: str | None = None) -> HealthThresholds:
    """Each check's target and alert level from ``[monitoring]`` (and ``[risk]`` for the daily loss)."""
    m = settings.monitoring
    limit = settings.risk.max_daily_loss_pct
    return HealthThresholds(
        memory=Threshold(Decimal(m.memory_alert_mb), Decimal(m.memory_target_mb)),
        system_memory=Threshold(m.system_memory_alert_pct, m.system_memory_target_pct),
        cpu=Threshold(m.cpu_alert_pct, m.cpu_target_pct),
        disk=Threshold(m.disk_alert_pct, m.disk_target_pct),
        api_error_rate=Threshold(m.api_error_rate_alert_pct, m.api_error_rate_target_pct),
        api_response_time=Threshold(Decimal(m.api_response_alert_ms), Decimal(m.api_response_target_ms)),
        market_data_age=market_data_threshold(
            GRANULARITY_SECONDS[granularity or settings.trading.granularity], settings.system.update_frequency_seconds,
            m.market_data_target_seconds, m.market_data_stale_seconds,
        ),
        llm_response_rate=Threshold(m.llm_response_rate_min_pct, m.llm_response_rate_target_pct, higher_is_worse=False),
        daily_loss=Threshold(limit, limit * m.daily_loss_warn_pct_of_limit / Decimal(100), inclusive=True),
        trading_halted=Threshold(Decimal(0)),
    )


def data_path(settings) -> Path:
    """The directory whose disk the disk check watches: the SQLite store's, else the read model's."""
    sqlite = settings.eventstore.sqlite_path
    return (sqlite if sqlite is not None else settings.readmodel.path).parent.resolve()


def alert_sink(settings, source: str = "") -> AlertSink:
    """The log always; plus the webhook when ``system.alert_webhook_url`` is set."""
    sinks: list = [LogAlertSink()]
    url = settings.system.alert_webhook_url
    if url is not None:
        m = settings.monitoring
        sinks.append(WebhookAlertSink(url.get_secret_value(), timeout=m.webhook_timeout_seconds,
                                      retries=m.webhook_retries, source=source))
    return FanOutAlertSink(sinks)


def health_probe(settings, store: TradingApplication, clock: Clock, *, api_meter: ApiCallMeter | None = None,
                 cpu_interval: float | None = None, measure_process: bool = True) -> HealthProbe:
    """The probe: ``cpu_interval`` blocks that long for a CPU reading (one-shot); ``measure_process``
    is False where this process is not the one to watch (a one-shot CLI)."""
    m = settings.monitoring
    return HealthProbe(store, clock, data_path=data_path(settings), api_meter=api_meter,
                       llm_window=timedelta(minutes=m.llm_window_minutes), llm_min_decisions=m.llm_min_decisions,
                       cpu_interval=cpu_interval, measure_process=measure_process)


def health_watch(settings, store: TradingApplication, clock: Clock, *, api_meter: ApiCallMeter | None = None,
                 sink: AlertSink | None = None, scope: str = "tradecore") -> HealthWatch:
    """The health watch of a process: probe, thresholds and sinks from the settings."""
    return HealthWatch(
        store, health_probe(settings, store, clock, api_meter=api_meter), health_thresholds(settings),
        sink if sink is not None else alert_sink(settings, source=f"{settings.trading.mode} {settings.trading.product}"),
        clock, scope=scope,
    )
