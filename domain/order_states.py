"""The order state machine: statuses, the transition table, and which events leave an order in which status.

Every part of the system that asks "is this order done?" asks this module (``TERMINAL``,
``TERMINAL_EVENTS``, ``STATUS_AFTER``), never a copy of its states: the Order aggregate
(domain/order.py), the money projections (projections/ledger/walk.py) and replay
(application/replay/book.py).
"""

from __future__ import annotations

import uuid
from enum import Enum

from domain.events import DomainError

__all__ = ["IllegalOrderTransition", "Liquidity", "OrderSide", "OrderStatus", "OrderType", "STATUS_AFTER", "TERMINAL",
           "TERMINAL_EVENTS", "TRANSITIONS"]


class OrderSide(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class Liquidity(str, Enum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class OrderStatus(str, Enum):
    PLACED = "PLACED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PLACED: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    # A venue may report a fill before (or instead of) an explicit acceptance.
    S.SUBMITTED: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


class IllegalOrderTransition(DomainError):
    """The order cannot go from its current status to the requested one."""

    def __init__(self, order_id: uuid.UUID, current: OrderStatus, target: OrderStatus):
        self.order_id, self.current, self.target = order_id, current, target
        super().__init__(f"order {order_id}: illegal transition {current.value} -> {target.value}")


STATUS_AFTER: dict[str, OrderStatus] = {
    "OrderPlaced": S.PLACED, "OrderSubmitted": S.SUBMITTED, "OrderAccepted": S.ACCEPTED,
    "OrderPartiallyFilled": S.PARTIALLY_FILLED, "OrderFilled": S.FILLED, "OrderCancelled": S.CANCELLED,
    "OrderRejected": S.REJECTED, "OrderExpired": S.EXPIRED,
}
"""The status an order is in after each of its state events (``FillDiscovered`` and ``OrderReconciled``
carry theirs in the payload: ``completed``, ``status``)."""
TERMINAL_EVENTS = frozenset(name for name, status in STATUS_AFTER.items() if status in TERMINAL)
"""The events after which an order is done."""
