"""Ports: the small interfaces the trading loop needs from the outside world.

Backtest, paper and live differ only in which adapters fill these ports: the
clock, the candle feed, the exchange, the decision model, the alert sink.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Protocol

from domain.decision import DecisionContext, StrategyDecision
from domain.market import Candle
from domain.order import Liquidity, OrderSide, OrderType


class Clock(Protocol):
    """Where 'now' comes from: the candle time in a backtest, the wall clock live."""

    def now(self) -> datetime: ...


class IdSource(Protocol):
    """Where new ids come from (seeded in backtests so replays reproduce them)."""

    def new_id(self) -> uuid.UUID: ...


class CandleFeed(Protocol):
    """Closed candles in time order."""

    def candles(self) -> Iterator[Candle]: ...


@dataclass(frozen=True)
class OrderRequest:
    """An order as the loop sends it to an exchange."""

    order_id: uuid.UUID
    client_order_id: str
    product: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    take_profit_price: Decimal | None = None


class ReportKind(str, Enum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FILL = "FILL"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    # The exchange saw a stop loss or take profit touched; the loop must
    # record and send the closing order (so it, too, is an event).
    STOP_TRIGGERED = "STOP_TRIGGERED"
    TAKE_PROFIT_TRIGGERED = "TAKE_PROFIT_TRIGGERED"


@dataclass(frozen=True)
class ExecutionReport:
    """What an exchange says happened to an order."""

    kind: ReportKind
    order_id: uuid.UUID
    occurred_at: datetime
    venue_order_id: str | None = None
    fill_id: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal | None = None
    fee_currency: str = "USD"
    liquidity: Liquidity | None = None
    reason: str = ""
    trigger_price: Decimal | None = None


class ExchangeGateway(Protocol):
    """An exchange: the paper exchange in backtest and paper mode, Coinbase live."""

    def submit(self, request: OrderRequest, reference_price: Decimal, at: datetime) -> list[ExecutionReport]:
        """Send an order; returns ACCEPTED or REJECTED and any immediate FILLs."""

    def on_candle(self, candle: Candle) -> list[ExecutionReport]:
        """Advance to a closed candle: fill resting orders, trigger stops and take profits."""

    def cancel(self, order_id: uuid.UUID, at: datetime) -> list[ExecutionReport]:
        """Cancel an open order; returns CANCELLED (or nothing if it is no longer open)."""

    def cancel_all(self, at: datetime) -> list[ExecutionReport]:
        """Cancel every open order (the emergency stop)."""

    def disarm(self, product: str) -> object:
        """Drop the stop loss / take profit held for a product (its position is being closed)."""


class DecisionModel(Protocol):
    """A strategy: rules or an LLM."""

    name: str

    def decide(self, context: DecisionContext) -> StrategyDecision: ...


class AlertSink(Protocol):
    """Where alerts go (webhook, log)."""

    def alert(self, severity: str, title: str, details: str) -> None: ...
