"""The settings read as the application's terms: the risk limits, the trading loop's settings, the health
thresholds, the folder whose disk is watched and the notifier's rules.

Pure translations of a loaded configuration (no adapter is picked here); the composition root
(api/bootstrap.py) hands them to what it builds, and names them for the CLI, bench/ and the tests.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path


def risk_limits(settings, product: str | None = None):
    """RiskLimits from the [risk] and [trading] settings; money thresholds are in the run's quote currency, so a
    product's ``[products."P"] min_balance`` replaces ``risk.min_balance`` for it."""
    from domain.risk import RiskLimits

    r = settings.risk
    table = (getattr(settings, "products", None) or {}).get(product or settings.trading.product)
    min_balance = table.min_balance if table is not None and table.min_balance is not None else r.min_balance
    return RiskLimits(
        max_position_size_pct=r.max_position_size_pct,
        max_daily_loss_pct=r.max_daily_loss_pct,
        max_concurrent_positions=r.max_concurrent_positions,
        require_stop_loss=r.require_stop_loss,
        max_leverage=r.max_leverage,
        min_balance=min_balance,
        halt_cooldown_minutes=r.halt_cooldown_minutes,
        rapid_loss_pct=r.rapid_loss_pct,
        rapid_loss_window_minutes=r.rapid_loss_window_minutes,
        max_consecutive_losses=r.max_consecutive_losses,
        max_drawdown_pct=r.max_drawdown_pct,
        allow_shorts=settings.trading.allow_shorts,
    )


def loop_settings(settings, *, product: str | None = None, granularity: str | None = None, flush_every: int = 1):
    """LoopSettings for the trading loop from the configuration."""
    from application.trading.loop import LoopSettings

    return LoopSettings(
        product=product or settings.trading.product,
        granularity=granularity or settings.trading.granularity,
        limits=risk_limits(settings, product),
        leverage=settings.trading.leverage,
        default_stop_loss_pct=settings.risk.default_stop_loss_pct,
        default_take_profit_pct=settings.risk.default_take_profit_pct,
        candles_in_context=settings.llm.candles_in_prompt,
        flush_every=flush_every,
    )


def health_thresholds(settings, granularity: str | None = None):
    """Each check's target and alert level from ``[monitoring]`` (and ``[risk]`` for the daily loss)."""
    from application.health.watch import HealthThresholds, Threshold, market_data_threshold
    from domain.market import granularity_delta

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
            int(granularity_delta(granularity or settings.trading.granularity).total_seconds()),
            settings.system.update_frequency_seconds,
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


def notifier_rules(settings):
    """The notifier's rules: the trade-success-rate alert (minimum, window), the daily summary's time, how often."""
    from datetime import time

    from application.operations.notifications import NotifierSettings

    at = settings.alerting.daily_summary_at
    summary = time(int(at[:2]), int(at[3:])) if at else None
    return NotifierSettings(settings.monitoring.trade_success_rate_min_pct, settings.monitoring.trade_success_rate_window,
                            summary, check_every_seconds=settings.monitoring.check_interval_seconds)
