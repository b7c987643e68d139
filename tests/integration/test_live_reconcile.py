"""Restart reconciliation against the Coinbase stand-in: every difference is an explicit event.

The log is written by a live run's own aggregates; the venue is the stand-in,
reached through the real SDK. The read model learns the new events.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from application.ports import OrderRequest
from application.trading.reconciliation import close_abandoned_runs, rebuild_book, reconcile_live, reconcile_paper
from domain.control import Run, RunMode
from domain.events import EventMeta
from domain.market import Candle
from domain.order import Order, OrderSide, OrderStatus, OrderType, client_order_id
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.errors import RetryPolicy
from infrastructure.venues.coinbase.execution import CoinbaseGateway
from projections.engine import runner
from tests.support.coinbase_standin import CoinbaseStandIn

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, granularity="5m").start()
    p = Decimal(100)
    s.set_history([Candle("BTC-USD", "5m", T0, p, p, p, p, Decimal(1))])
    yield s
    s.stop()


@pytest.fixture
def venue(stand):
    client = CoinbaseClient(stand.api_key, stand.api_secret, base_url=stand.base_url, ca_bundle=stand.ca_file,
                            retry=RetryPolicy(attempts=2, initial_wait=0.01))
    return CoinbaseGateway(client, fill_wait=0)


def live_run(app, run_id) -> None:
    run = Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode=RunMode.LIVE, product="BTC-USD",
                    granularity="5m", strategy="rules", config_hash="x", code_version="test")
    app.record_in_order(run.collect_events())


def submitted(app, run_id, quantity="1", order_type="LIMIT", limit="90", **extra) -> Order:
    order_id = uuid.uuid4()
    meta = EventMeta(T0, "system", None, None, run_id)
    order = Order.place(order_id, meta, product="BTC-USD", side="BUY", order_type=order_type,
                        quantity=Decimal(quantity), limit_price=Decimal(limit) if limit else None, **extra)
    order.submit(meta)
    app.record_in_order(order.collect_events())
    return order


def request_of(order: Order) -> OrderRequest:
    return OrderRequest(order.id, order.client_order_id, order.product, order.side, order.order_type, order.quantity,
                        order.limit_price)


def meta_factory(run_id):
    return lambda: EventMeta(T0 + timedelta(hours=1), "reconciliation", run_id, None, run_id)


def test_every_difference_with_the_venue_is_recorded_as_an_event(app, stand, venue):
    old_run, new_run = uuid.uuid4(), uuid.uuid4()
    live_run(app, old_run)
    never_sent = submitted(app, old_run)
    partly_filled_then_cancelled = submitted(app, old_run)
    resting = submitted(app, old_run)
    for order in (partly_filled_then_cancelled, resting):  # the venue took them; the answers were never recorded
        venue.submit(request_of(order), Decimal(100), T0)
    venue_id = stand.by_client[partly_filled_then_cancelled.client_order_id]
    stand.fill(venue_id, Decimal("0.25"))
    stand.cancel_at_venue(venue_id)

    book = rebuild_book(app, RunMode.LIVE)
    assert {o.id for o in book.working} == {never_sent.id, partly_filled_then_cancelled.id, resting.id}
    result = reconcile_live(app, book, venue, meta_factory(new_run), ("BTC-USD",))

    assert app.repository.get(never_sent.id).status is OrderStatus.CANCELLED
    assert "never reached the venue" in app.repository.get(never_sent.id).reason
    cancelled = app.repository.get(partly_filled_then_cancelled.id)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_quantity == Decimal("0.25")
    assert cancelled.venue_order_id == venue_id
    kept = app.repository.get(resting.id)
    assert kept.status is OrderStatus.ACCEPTED and kept.venue_order_id == stand.by_client[resting.client_order_id]
    assert result.fills_discovered == 1 and result.orders_reconciled == 4
    kinds = [type(e.event).__name__ for e in app.iter_log() if e.event.run_id == new_run]
    assert kinds.count("FillDiscovered") == 1 and kinds.count("OrderReconciled") == 4
    assert kinds.count("BalanceReconciled") == 1  # USD (never recorded); the discovered fill explains the BTC

    # A second reconciliation finds nothing new: the log now agrees with the venue.
    again = reconcile_live(app, rebuild_book(app, RunMode.LIVE), venue, meta_factory(new_run), ("BTC-USD",))
    assert (again.orders_reconciled, again.fills_discovered, again.balances_reconciled) == (0, 0, 0)

    con = runner.open_readmodel(":memory:")
    runner.catch_up(app, con)
    rows = dict(con.execute("SELECT CAST(order_id AS VARCHAR), status FROM orders").fetchall())
    assert rows == {str(never_sent.id): "CANCELLED", str(partly_filled_then_cancelled.id): "CANCELLED",
                    str(resting.id): "ACCEPTED"}
    assert con.execute("SELECT count(*), sum(quantity) FROM fills").fetchone() == (1, Decimal("0.25"))
    position = con.execute("SELECT quantity FROM positions WHERE CAST(run_id AS VARCHAR) = ?", [str(old_run)]).fetchone()
    assert position == (Decimal("0.25"),)  # a discovered fill books like any fill, in the run that placed the order


def test_a_fill_found_since_the_last_recorded_fill_is_discovered_once(app, stand, venue):
    run_id = uuid.uuid4()
    live_run(app, run_id)
    order = submitted(app, run_id, quantity="2", order_type="MARKET", limit=None)
    (accepted,) = [r for r in venue.submit(request_of(order), Decimal(100), T0) if r.kind.value == "ACCEPTED"]
    meta = EventMeta(T0, "exchange", None, None, run_id)
    order.accept(meta, accepted.venue_order_id)
    app.record_in_order(order.collect_events())
    # The venue's market fill happened; the process died before recording it.
    first = reconcile_live(app, rebuild_book(app, RunMode.LIVE), venue, meta_factory(uuid.uuid4()), ("BTC-USD",))
    second = reconcile_live(app, rebuild_book(app, RunMode.LIVE), venue, meta_factory(uuid.uuid4()), ("BTC-USD",))
    assert (first.fills_discovered, second.fills_discovered) == (1, 0)
    assert app.repository.get(order.id).status is OrderStatus.FILLED


def test_paper_orders_of_a_dead_process_are_cancelled_and_its_run_closed(app):
    dead, current = uuid.uuid4(), uuid.uuid4()
    run = Run.begin(dead, EventMeta(T0, "system", dead, None, dead), mode=RunMode.PAPER, product="BTC-USD",
                    granularity="5m", strategy="rules", config_hash="x", code_version="test")
    app.record_in_order(run.collect_events())
    order = submitted(app, dead)
    assert close_abandoned_runs(app, RunMode.PAPER, current, meta_factory(current)) == [dead]
    result = reconcile_paper(app, rebuild_book(app, RunMode.PAPER), meta_factory(current))
    assert result.orders_reconciled == 1
    assert app.repository.get(order.id).status is OrderStatus.CANCELLED
    assert [e.event.status for e in app.iter_log() if type(e.event).__name__ == "RunEnded"] == ["abandoned"]


def test_the_order_side_of_a_reconciled_order_is_kept(app, stand, venue):
    run_id = uuid.uuid4()
    live_run(app, run_id)
    order = submitted(app, run_id)
    assert order.side is OrderSide.BUY and order.order_type is OrderType.LIMIT
    assert order.client_order_id == client_order_id(order.id)
