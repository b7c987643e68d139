"""The terms of a run: what the trading loop is given (``LoopSettings``, an ``IndicatorSource``) and what
it reports (``RunSummary``), and the conversions at the edge between a strategy's floats and the events."""

from __future__ import annotations

import math
from datetime import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from domain.market import Candle
from domain.product import ProductSpec
from domain.risk import RiskLimits

__all__ = ["IndicatorSource", "LoopSettings", "RunSummary"]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")


class IndicatorSource(Protocol):
    """Indicator values for each closed candle, in order."""

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]: ...


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from the configuration."""

    product: str
    granularity: str
    limits: RiskLimits = field(default_factory=RiskLimits)
    leverage: Decimal = Decimal(1)
    default_stop_loss_pct: Decimal | None = Decimal(2)
    default_take_profit_pct: Decimal | None = Decimal(4)
    candles_in_context: int = 24
    flush_every: int = 1
    quote_currency: str = "USD"
    spec: ProductSpec | None = None
    process: str | None = None  # the process running the loop (host:pid:start), recorded in RunStarted
    """The product's price and size grid and minimums (domain/product.py); None: cents and 1e-8 units."""
    bot_id: str | None = None
    """The bot a paper/live run trades as (its control stream, client order ids); None: a backtest."""

    @property
    def quote_increment(self) -> Decimal:
        """The product's price grid (cents without a spec)."""
        return self.spec.quote_increment if self.spec is not None else CENT

    @property
    def base_increment(self) -> Decimal:
        """The product's size grid (1e-8 without a spec)."""
        return self.spec.base_increment if self.spec is not None else SATOSHI


@dataclass
class RunSummary:
    """What a run did, from the loop's own account (the fills it recorded)."""

    candles: int = 0
    decisions: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    halts: int = 0
    trades: int = 0
    wins: int = 0
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    initial_equity: Decimal = ZERO
    final_equity: Decimal = ZERO
    max_drawdown_pct: Decimal = ZERO
    events: int = 0
    drawdown_halted_at: datetime | None = None
    drawdown_halt_reason: str | None = None

    @property
    def win_rate_pct(self) -> Decimal:
        return (Decimal(self.wins) / Decimal(self.trades) * HUNDRED) if self.trades else ZERO


def _clean(inputs: dict[str, Any]) -> dict[str, Any]:
    # A strategy's inputs go into an event as JSON: NaN and infinities have no JSON form.
    # Usually there are none (the event copies the dict when it validates it, so no copy here then).
    isfinite = math.isfinite
    for v in inputs.values():
        if isinstance(v, float) and not isfinite(v):
            return {k: (None if isinstance(v, float) and not isfinite(v) else v) for k, v in inputs.items()}
    return inputs

