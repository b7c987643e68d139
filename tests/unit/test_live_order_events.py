"""The order events reconciliation records: FillDiscovered and OrderReconciled."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from domain.events import EventMeta
from domain.order import FillDiscovered, IllegalOrderTransition, Order, OrderReconciled, OrderStatus, Overfill

META = EventMeta(datetime(2026, 1, 1, tzinfo=timezone.utc), "reconciliation")


def submitted(quantity: str = "1") -> Order:
    order = Order.place(uuid.uuid4(), META, product="BTC-USD", side="BUY", order_type="MARKET", quantity=Decimal(quantity))
    order.submit(META)
    order.collect_events()
    return order


def discover(order: Order, fill_id: str, quantity: str) -> bool:
    return order.discover_fill(META, fill_id=fill_id, quantity=Decimal(quantity), price=Decimal(100), fee=Decimal("0.1"),
                               fee_currency="USD", liquidity="TAKER", reason="found on restart")


def test_a_discovered_fill_books_like_a_fill_and_is_applied_once():
    order = submitted("1")
    assert discover(order, "t1", "0.4") and order.status is OrderStatus.PARTIALLY_FILLED
    assert not discover(order, "t1", "0.4")
    assert discover(order, "t2", "0.6") and order.status is OrderStatus.FILLED
    events = order.collect_events()
    assert [type(e) for e in events] == [FillDiscovered, FillDiscovered]
    assert [e.completed for e in events] == [False, True] and events[1].cumulative_quantity == Decimal(1)


def test_a_discovered_fill_past_the_order_quantity_is_refused():
    with pytest.raises(Overfill):
        discover(submitted("1"), "t1", "1.5")


def test_reconciling_takes_the_venue_status_through_the_transition_table():
    order = submitted()
    assert order.reconcile(META, OrderStatus.ACCEPTED, "OPEN", "answer never recorded", venue_order_id="v1")
    assert (order.status, order.venue_order_id) == (OrderStatus.ACCEPTED, "v1")
    assert not order.reconcile(META, OrderStatus.ACCEPTED, "OPEN", "nothing differs", venue_order_id="v1")
    assert order.reconcile(META, OrderStatus.CANCELLED, "CANCELLED", "cancelled at the venue")
    (accepted, cancelled) = order.collect_events()
    assert isinstance(cancelled, OrderReconciled) and cancelled.previous_status is OrderStatus.ACCEPTED
    assert order.reason == "cancelled at the venue"
    with pytest.raises(IllegalOrderTransition):
        order.reconcile(META, OrderStatus.ACCEPTED, "OPEN", "a cancelled order cannot come back")
