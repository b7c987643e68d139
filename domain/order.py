"""The Order aggregate: an explicit state machine over its events.

    PLACED -> SUBMITTED -> ACCEPTED -> PARTIALLY_FILLED -> FILLED
    any open state -> CANCELLED | REJECTED | EXPIRED (the table: domain/order_states.py)

Fills carry a venue ``fill_id``; a fill seen twice is applied once. A fill that
would take the filled quantity past the order's quantity is refused.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import ClassVar

from pydantic import model_validator

from domain.aggregate import Aggregate, StartingEvent
from domain.events import DomainError, DomainEvent, EventMeta, FieldProblem, NonNegative, Positive
from domain.order_states import (  # noqa: F401  (the state machine, re-exported: domain.order is its public face)
    STATUS_AFTER, TERMINAL, TERMINAL_EVENTS, TRANSITIONS, IllegalOrderTransition, Liquidity, OrderSide, OrderStatus,
    OrderType,
)


class Overfill(DomainError):
    """A fill would take the filled quantity past the order's quantity."""


def client_order_id(order_id: uuid.UUID, bot_id: str | None = None) -> str:
    """The id the venue sees, derived from ours so a retry is recognisable: ``tc-<bot>-<hex>``, so a bot
    knows its own orders on an account several bots share (``tc-<hex>`` before bots, and for backtests)."""
    return f"tc-{bot_id}-{order_id.hex}" if bot_id else f"tc-{order_id.hex}"


class OrderPlaced(StartingEvent):
    """The loop decided to trade: the order as intended, before any venue saw it."""

    product: str
    side: OrderSide
    order_type: OrderType
    quantity: Positive
    limit_price: Positive | None = None
    stop_loss_price: Positive | None = None
    take_profit_price: Positive | None = None
    client_order_id: str
    decision_id: uuid.UUID | None = None
    time_in_force: str = "GTC"

    @model_validator(mode="after")
    def _limit_needs_price(self):
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise FieldProblem("limit_price", None, "a LIMIT order needs a limit price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise FieldProblem("limit_price", self.limit_price, "a MARKET order takes no limit price")
        return self

    @classmethod
    def _aggregate_class(cls):
        return Order

    def apply(self, order: Order) -> None:
        order.product = self.product
        order.side = self.side
        order.order_type = self.order_type
        order.quantity = self.quantity
        order.limit_price = self.limit_price
        order.stop_loss_price = self.stop_loss_price
        order.take_profit_price = self.take_profit_price
        order.client_order_id = self.client_order_id
        order.decision_id = self.decision_id
        order.status = OrderStatus.PLACED
        order.filled_quantity = Decimal(0)
        order.filled_notional = Decimal(0)
        order.fees = Decimal(0)
        order.fill_ids = set()
        order.venue_order_id = None
        order.reason = None


class OrderSubmitted(DomainEvent):
    """The order was sent to the venue (paper or Coinbase)."""

    def apply(self, order: Order) -> None:
        order.status = OrderStatus.SUBMITTED


class OrderAccepted(DomainEvent):
    """The venue acknowledged the order and gave it its own id."""

    venue_order_id: str

    def apply(self, order: Order) -> None:
        order.status = OrderStatus.ACCEPTED
        order.venue_order_id = self.venue_order_id


class _FillEvent(DomainEvent):
    """A fill: fill_id (the venue's, applied once), quantity, price, fee, fee currency, liquidity, and the cumulative filled quantity."""

    fill_id: str
    quantity: Positive
    price: Positive
    fee: NonNegative
    fee_currency: str
    liquidity: Liquidity
    cumulative_quantity: Positive

    def apply(self, order: Order) -> None:
        order.fill_ids.add(self.fill_id)
        order.filled_quantity = self.cumulative_quantity
        order.filled_notional += self.quantity * self.price
        order.fees += self.fee


class OrderPartiallyFilled(_FillEvent):
    """A fill that leaves part of the order open."""

    def apply(self, order: Order) -> None:
        super().apply(order)
        order.status = OrderStatus.PARTIALLY_FILLED


class OrderFilled(_FillEvent):
    """The fill that completes the order."""

    def apply(self, order: Order) -> None:
        super().apply(order)
        order.status = OrderStatus.FILLED


class _OrderEnded(DomainEvent):
    """An order ended without (more) fills: the status the state machine gives the event (``STATUS_AFTER``), and why."""

    reason: str

    def apply(self, order: Order) -> None:
        order.status = STATUS_AFTER[type(self).__name__]
        order.reason = self.reason


class OrderCancelled(_OrderEnded):
    """The order was cancelled (by the operator, the loop or the venue); the unfilled rest is void."""


class OrderRejected(_OrderEnded):
    """The venue or the exchange adapter refused the order; the reason says why."""


class OrderExpired(_OrderEnded):
    """The order's time in force ran out before it filled."""

    reason: str = "time in force elapsed"


class FillDiscovered(_FillEvent):
    """A fill the venue reported that the log did not have, found by reconciliation (e.g. after a crash).

    It books like any fill; ``completed`` says whether it completes the order,
    ``reason`` how it was found. Never a synthetic fill: every field is the venue's.
    """

    completed: bool
    reason: str

    def apply(self, order: Order) -> None:
        super().apply(order)
        order.status = OrderStatus.FILLED if self.completed else OrderStatus.PARTIALLY_FILLED


class OrderReconciled(DomainEvent):
    """The venue's view of an order differed from the log; the order takes the venue's status.

    ``venue_status`` is what the venue said (or NOT_FOUND), ``status`` the
    order's status after this event, ``reason`` what was found and why.
    """

    previous_status: OrderStatus
    status: OrderStatus
    venue_status: str
    venue_order_id: str | None = None
    reason: str

    def apply(self, order: Order) -> None:
        order.status = self.status
        if self.venue_order_id:
            order.venue_order_id = self.venue_order_id
        if self.status in TERMINAL:
            order.reason = self.reason


FILL_EVENTS: tuple[type[DomainEvent], ...] = (OrderPartiallyFilled, OrderFilled, FillDiscovered)


class Order(Aggregate):
    """One order's life; every change is an event, every transition checked."""

    product: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    stop_loss_price: Decimal | None
    take_profit_price: Decimal | None
    client_order_id: str
    decision_id: uuid.UUID | None
    status: OrderStatus
    filled_quantity: Decimal
    filled_notional: Decimal
    fees: Decimal
    fill_ids: set[str]
    venue_order_id: str | None
    reason: str | None

    STREAM: ClassVar[str] = "order"

    @classmethod
    def place(
        cls,
        order_id: uuid.UUID,
        meta: EventMeta,
        *,
        product: str,
        side: OrderSide | str,
        order_type: OrderType | str,
        quantity: Decimal,
        limit_price: Decimal | None = None,
        stop_loss_price: Decimal | None = None,
        take_profit_price: Decimal | None = None,
        decision_id: uuid.UUID | None = None,
        time_in_force: str = "GTC",
        bot_id: str | None = None,
    ) -> Order:
        event = OrderPlaced.build(
            order_id,
            1,
            meta,
            product=product,
            side=side,
            order_type=order_type,
            quantity=quantity,
            limit_price=limit_price,
            stop_loss_price=stop_loss_price,
            take_profit_price=take_profit_price,
            client_order_id=client_order_id(order_id, bot_id),
            decision_id=decision_id,
            time_in_force=time_in_force,
        )
        return cls._start(event)

    @property
    def is_working(self) -> bool:
        return self.status not in TERMINAL

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def average_fill_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return self.filled_notional / self.filled_quantity

    def _require(self, target: OrderStatus) -> None:
        if target not in TRANSITIONS[self.status]:
            raise IllegalOrderTransition(self.id, self.status, target)

    def submit(self, meta: EventMeta) -> None:
        self._require(OrderStatus.SUBMITTED)
        self._trigger(OrderSubmitted, meta)

    def accept(self, meta: EventMeta, venue_order_id: str) -> None:
        self._require(OrderStatus.ACCEPTED)
        self._trigger(OrderAccepted, meta, venue_order_id=venue_order_id)

    def fill(
        self,
        meta: EventMeta,
        *,
        fill_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_currency: str,
        liquidity: Liquidity | str,
    ) -> bool:
        """Apply a fill; returns False (and records nothing) for a fill seen before."""
        cumulative = self._cumulative_after(fill_id, quantity, "fill")
        if cumulative is None:
            return False
        event_class = OrderFilled if cumulative == self.quantity else OrderPartiallyFilled
        self._trigger(
            event_class,
            meta,
            fill_id=fill_id,
            quantity=quantity,
            price=price,
            fee=fee,
            fee_currency=fee_currency,
            liquidity=liquidity,
            cumulative_quantity=cumulative,
        )
        return True

    def discover_fill(
        self,
        meta: EventMeta,
        *,
        fill_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_currency: str,
        liquidity: Liquidity | str,
        reason: str,
    ) -> bool:
        """Record a fill found at the venue by reconciliation; False for a fill already recorded."""
        cumulative = self._cumulative_after(fill_id, quantity, "discovered fill")
        if cumulative is None:
            return False
        completed = cumulative == self.quantity
        self._trigger(
            FillDiscovered, meta, fill_id=fill_id, quantity=quantity, price=price, fee=fee,
            fee_currency=fee_currency, liquidity=liquidity, cumulative_quantity=cumulative, completed=completed,
            reason=reason,
        )
        return True

    def _cumulative_after(self, fill_id: str, quantity: Decimal, what: str) -> Decimal | None:
        """The filled quantity once this fill is applied; None for a fill seen before.

        Refuses a quantity <= 0 (FieldProblem), a fill past the order quantity (Overfill) and a
        fill the order's status does not allow (IllegalOrderTransition); ``what`` names the fill
        in the Overfill message ("fill", "discovered fill").
        """
        if fill_id in self.fill_ids:
            return None
        if quantity <= 0:
            raise FieldProblem("quantity", quantity, "a fill quantity must be > 0")
        cumulative = self.filled_quantity + quantity
        if cumulative > self.quantity:
            raise Overfill(
                f"order {self.id}: {what} {fill_id} of {quantity} takes the filled quantity to "
                f"{cumulative}, past the order quantity {self.quantity}"
            )
        self._require(OrderStatus.FILLED if cumulative == self.quantity else OrderStatus.PARTIALLY_FILLED)
        return cumulative

    def reconcile(self, meta: EventMeta, status: OrderStatus | str, venue_status: str, reason: str,
                  venue_order_id: str | None = None) -> bool:
        """Take the venue's status (a legal transition only); False when nothing differs."""
        status = OrderStatus(status)
        new_venue_id = venue_order_id if venue_order_id and venue_order_id != self.venue_order_id else None
        if status is self.status and new_venue_id is None:
            return False
        if status is not self.status:
            self._require(status)
        self._trigger(
            OrderReconciled, meta, previous_status=self.status, status=status, venue_status=venue_status,
            venue_order_id=venue_order_id, reason=reason,
        )
        return True

    def cancel(self, meta: EventMeta, reason: str) -> None:
        self._require(OrderStatus.CANCELLED)
        self._trigger(OrderCancelled, meta, reason=reason)

    def reject(self, meta: EventMeta, reason: str) -> None:
        self._require(OrderStatus.REJECTED)
        self._trigger(OrderRejected, meta, reason=reason)

    def expire(self, meta: EventMeta, reason: str = "time in force elapsed") -> None:
        self._require(OrderStatus.EXPIRED)
        self._trigger(OrderExpired, meta, reason=reason)
