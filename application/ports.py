"""Ports: the small interfaces the application needs from the outside world.

Backtest, paper and live differ only in which adapters fill these ports: the
clock, the candle feed, the exchange, the decision model, the alert sink. Every
command also reads its configuration and writes its log through a port
(``Configuration``, ``ProcessLog``); api/bootstrap.py picks the adapters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

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


# --- the venue's own view (live trading) ---------------------------------------------


class VenueError(Exception):
    """The venue could not do what was asked; adapters translate their SDK's errors into these."""

    retryable: bool = False

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class VenueClientError(VenueError):
    """The venue refused the request itself (HTTP 4xx): retrying the same request will not help."""


class VenueAuthError(VenueClientError):
    """The venue refused our credentials (401/403, or no keys for a private endpoint)."""


class VenueRateLimited(VenueClientError):
    """Too many requests (429); ``retry_after`` is how long the venue asked us to wait, in seconds."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = 429):
        self.retry_after = retry_after
        super().__init__(message, status)


class VenueServerError(VenueError):
    """The venue failed (HTTP 5xx); the request may be retried."""

    retryable = True


class VenueUnavailable(VenueError):
    """The venue could not be reached (connection refused, timeout); the request may be retried."""

    retryable = True


class VenueDataError(VenueError):
    """The venue sent something we cannot trust (a missing or malformed field); names the field and value."""


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue reports it, in our terms."""

    venue_order_id: str
    client_order_id: str
    product: str
    side: OrderSide
    status: str  # the venue's word: OPEN, FILLED, CANCELLED, EXPIRED, FAILED, PENDING, UNKNOWN
    filled_quantity: Decimal
    order_id: uuid.UUID | None = None  # ours, when the client_order_id is one we derived
    reason: str = ""


@dataclass(frozen=True)
class VenueFill:
    """A fill as the venue reports it."""

    fill_id: str
    venue_order_id: str
    product: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    occurred_at: datetime
    fee_currency: str = "USD"


class VenueAccount(Protocol):
    """What reconciliation asks the venue: its open orders, fills and balances."""

    def open_orders(self, product: str | None = None) -> list[VenueOrder]: ...

    def find_order(self, client_order_id: str, venue_order_id: str | None = None,
                   placed_after: datetime | None = None) -> VenueOrder | None:
        """The venue's order with this client_order_id (None: the venue never saw it)."""

    def fills_since(self, since: datetime | None, product: str | None = None) -> list[VenueFill]: ...

    def balances(self) -> dict[str, Decimal]:
        """Total (available + held) per currency."""


# --- the process's surroundings (every command) ---------------------------------------------


class Configuration(Protocol):
    """Where the settings come from (defaults < TOML file < environment < overrides) and which are secret.

    The settings object it loads answers ``effective_config()``, ``config_hash()`` and ``flat_config()``.
    """

    def load_settings(self, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                      overrides: Mapping[str, Any] | None = None) -> Any:
        """The validated settings; raises ``application.errors.ConfigurationError`` naming every bad one."""

    def settings_errors(self, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                        overrides: Mapping[str, Any] | None = None) -> list:
        """Every problem of the configuration at once (path, value, why, source); empty: it loads."""

    def setting_sources(self, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                        overrides: Mapping[str, Any] | None = None,
                        override_labels: Mapping[str, str] | None = None) -> dict[str, str]:
        """Dotted path -> where its value comes from (default, a file, the environment, an override)."""

    def is_secret_path(self, path: str) -> bool:
        """Whether a dotted path holds a secret: never shown, never recorded in the log."""

    def sounds_secret(self, path: str) -> bool:
        """Whether a path, known or not, sounds like a secret's: its value is not echoed back."""


class ProcessLog(Protocol):
    """This process's log: JSON lines, secrets masked, to stderr or a retained file."""

    def configure_logging(self, settings: Any, *, long_running: bool = False) -> Any:
        """Install the handler for these settings (``long_running``: the default file rather than stderr)."""

    def configure_from_environment(self) -> None:
        """Best effort before a command's settings load: the environment's level, on stderr."""

    def bind(self, **fields: object) -> None:
        """Fields (run id, product, mode) added to every later line of this process."""

    def current_log_file(self) -> Path | None:
        """The file being written, if one is."""

    def log_destination(self, settings: Any, long_running: bool) -> Path | None:
        """Where a process with these settings logs (None: stderr)."""

    def analysed_log_file(self, settings: Any) -> Path:
        """The file a log analysis and the secret scan read: the configured file, else the default one."""

    def log_files(self, path: Path) -> list[Path]:
        """The rotated files of ``path``, oldest first, then ``path`` itself if it exists."""
