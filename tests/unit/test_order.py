"""The Order aggregate's state machine, fills and replay."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from domain.events import EventMeta, EventValidationError
from domain.order import (
    TRANSITIONS,
    IllegalOrderTransition,
    Order,
    OrderStatus,
    Overfill,
    client_order_id,
)

META = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), actor="test")


def new_order(quantity="1", **kw) -> Order:
    return Order.place(uuid.uuid4(), META, product="BTC-USD", side="BUY", order_type="MARKET", quantity=D(quantity), **kw)


def fill(order, fill_id, qty, price="100", fee="0.1"):
    return order.fill(META, fill_id=fill_id, quantity=D(qty), price=D(price), fee=D(fee), fee_currency="USD", liquidity="TAKER")


def test_order_goes_placed_submitted_accepted_partially_filled_filled():
    order = new_order("1")
    order.submit(META)
    order.accept(META, "venue-1")
    assert fill(order, "a", "0.4")
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert fill(order, "b", "0.6", price="110")
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == D("1")
    assert order.average_fill_price == D("106")
    assert order.fees == D("0.2")


def test_fill_seen_twice_is_applied_once():
    order = new_order("1")
    order.submit(META)
    assert fill(order, "a", "0.4")
    before = len(order._pending)
    assert fill(order, "a", "0.4") is False
    assert len(order._pending) == before
    assert order.filled_quantity == D("0.4")


def test_fill_past_order_quantity_is_refused():
    order = new_order("1")
    order.submit(META)
    with pytest.raises(Overfill):
        fill(order, "a", "1.5")


@pytest.mark.parametrize(
    "steps, illegal",
    [
        ([], "accept"),
        (["submit", "cancel"], "submit"),
        (["submit", "reject"], "cancel"),
        (["submit", "accept", "fill_all"], "cancel"),
        (["submit", "accept", "expire"], "fill"),
    ],
)
def test_illegal_transition_raises_domain_error(steps, illegal):
    order = new_order("1")
    actions = {
        "submit": lambda: order.submit(META),
        "accept": lambda: order.accept(META, "v"),
        "cancel": lambda: order.cancel(META, "operator"),
        "reject": lambda: order.reject(META, "insufficient funds"),
        "expire": lambda: order.expire(META),
        "fill_all": lambda: fill(order, "x", "1"),
        "fill": lambda: fill(order, "y", "0.1"),
    }
    for step in steps:
        actions[step]()
    with pytest.raises(IllegalOrderTransition):
        actions[illegal]()


def test_terminal_states_allow_nothing():
    for status in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        assert TRANSITIONS[status] == frozenset()


def test_limit_order_without_price_is_refused():
    with pytest.raises(EventValidationError, match="limit_price"):
        Order.place(uuid.uuid4(), META, product="BTC-USD", side="BUY", order_type="LIMIT", quantity=D("1"))


def test_replaying_the_events_rebuilds_the_same_order():
    order = new_order("2", stop_loss_price=D("90"))
    order.submit(META)
    order.accept(META, "v9")
    fill(order, "a", "0.5")
    events = order.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed.status is OrderStatus.PARTIALLY_FILLED
    assert replayed.filled_quantity == D("0.5")
    assert replayed.venue_order_id == "v9"
    assert replayed.version == 4
    assert replayed.client_order_id == client_order_id(order.id)
