"""What a replay knows of a run and of its orders, and the kinds of events it folds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.control import TRADING_CONTROL_ID, run_control_id
from domain.events import DomainEvent
from domain.order_states import STATUS_AFTER, TERMINAL

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
_PCT = Decimal("0.0001")

TERMINAL_STATUSES = frozenset(status.value for status in TERMINAL)  # the Order transition table's
FILL_TYPES = frozenset({"OrderPartiallyFilled", "OrderFilled", "FillDiscovered"})
ORDER_TYPES = frozenset({
    "OrderPlaced", "OrderSubmitted", "OrderAccepted", "OrderPartiallyFilled", "OrderFilled", "OrderCancelled",
    "OrderRejected", "OrderExpired", "FillDiscovered", "OrderReconciled",
})
DECISION_TYPES = frozenset({"DecisionMade", "DecisionFailed"})
CONTROL_TYPES = frozenset({"ControlStarted", "TradingHalted", "TradingResumed", "CancelAllRequested"})
_STATUS_AFTER = {name: status.value for name, status in STATUS_AFTER.items()}


@dataclass(frozen=True)
class RunInfo:
    """A run as its ``RunStarted`` describes it (or as far as the log knows it)."""

    run_id: uuid.UUID
    mode: str
    product: str
    granularity: str
    strategy: str
    config_hash: str
    code_version: str
    initial_balance: Decimal | None
    started_at: datetime | None

    @property
    def control_id(self) -> uuid.UUID:
        """The control stream the run's loop halts on: its own in a backtest, the shared one otherwise."""
        return run_control_id(self.run_id) if self.mode == "backtest" else TRADING_CONTROL_ID

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id), "mode": self.mode, "product": self.product, "granularity": self.granularity,
            "strategy": self.strategy, "config_hash": self.config_hash, "code_version": self.code_version,
            "initial_balance": _s(self.initial_balance),
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }


@dataclass
class OrderView:
    """What the book knows of one order."""

    order_id: uuid.UUID
    product: str
    side: str
    order_type: str
    quantity: Decimal
    stop_loss_price: Decimal | None
    take_profit_price: Decimal | None
    decision_id: uuid.UUID | None
    placed_at: datetime
    status: str = "PLACED"
    filled: Decimal = ZERO
    events: list[DomainEvent] = field(default_factory=list)

    @property
    def working(self) -> bool:
        return self.status not in TERMINAL_STATUSES


def _s(value: Any) -> Any:
    return None if value is None else str(value)
