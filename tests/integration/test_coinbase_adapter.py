"""The Coinbase adapter against a local stand-in speaking the venue's protocols, through the real SDK.

REST over HTTPS (a self-signed certificate made here, trusted explicitly), the
SDK's ES256 JWT checked on every private call, WebSocket over ws://.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from application.ports import OrderRequest, ReportKind, VenueAuthError
from domain.events import EventMeta
from domain.market import Candle
from domain.order import Order, OrderSide, OrderStatus, OrderType, client_order_id
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.errors import RetryPolicy
from infrastructure.venues.coinbase.execution import CoinbaseGateway
from infrastructure.venues.coinbase.market_data import CandleStream, fetch_candles
from tests.support.coinbase_standin import CoinbaseStandIn, make_api_key, wait_for

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05)


def candle(i: int, price: int = 100) -> Candle:
    p = Decimal(price + i)
    return Candle("BTC-USD", "5m", T0 + i * STEP, p, p + 2, p - 2, p + 1, Decimal("3.5"))


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, granularity="5m", heartbeat_every=0.1).start()
    s.set_history([candle(i) for i in range(20)])
    yield s
    s.stop()


def client_for(stand, keys: bool = True, retry: RetryPolicy = FAST) -> CoinbaseClient:
    key, secret = (stand.api_key, stand.api_secret) if keys else (None, None)
    return CoinbaseClient(key, secret, base_url=stand.base_url, ca_bundle=stand.ca_file, retry=retry, timeout=5)


def market(quantity: str = "0.5", side: OrderSide = OrderSide.BUY) -> OrderRequest:
    order_id = uuid.uuid4()
    return OrderRequest(order_id, client_order_id(order_id), "BTC-USD", side, OrderType.MARKET, Decimal(quantity))


def test_a_500_then_success_on_retry_leaves_exactly_one_order_at_the_venue(stand):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0.5, poll_every=0.02)
    stand.knobs.create_failures.extend([500, 503])
    request = market()
    reports = gateway.submit(request, Decimal(120), T0)
    assert [r.kind for r in reports] == [ReportKind.ACCEPTED, ReportKind.FILL]
    creates = [status for method, path, status in stand.requests if path.endswith("/orders") and method == "POST"]
    assert creates == [500, 503, 200]
    assert stand.order_count() == 1
    assert stand.orders[reports[0].venue_order_id].client_order_id == request.client_order_id
    assert stand.auth_failures == []


def test_a_resend_with_the_same_client_order_id_gets_the_venue_order_not_a_second_one(stand):
    request = market()
    first = CoinbaseGateway(client_for(stand), fill_wait=0).submit(request, Decimal(120), T0)
    again = CoinbaseGateway(client_for(stand), fill_wait=0).submit(request, Decimal(120), T0)  # e.g. after a restart
    assert first[0].venue_order_id == again[0].venue_order_id
    assert stand.order_count() == 1


def test_a_429_waits_as_long_as_the_venue_asks(stand):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0)
    stand.knobs.rate_limits.append(("/api/v3/brokerage/orders", 0.4))
    started = time.monotonic()
    reports = gateway.submit(market(), Decimal(120), T0)
    assert time.monotonic() - started >= 0.4
    assert reports[0].kind is ReportKind.ACCEPTED
    assert [s for _, p, s in stand.requests if p.endswith("/orders")] == [429, 200]


def test_the_venue_refusing_an_order_is_a_rejection_with_its_reason(stand):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0)
    stand.knobs.reject_next = "INSUFFICIENT_FUND"
    (report,) = gateway.submit(market("1000"), Decimal(120), T0)
    assert report.kind is ReportKind.REJECTED
    assert "INSUFFICIENT_FUND" in report.reason
    assert stand.order_count() == 0


def test_a_client_error_is_not_retried_and_rejects_the_order(stand):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0)
    stand.knobs.create_failures.append(400)
    (report,) = gateway.submit(market(), Decimal(120), T0)
    assert report.kind is ReportKind.REJECTED and "HTTP 400" in report.reason
    assert [s for _, p, s in stand.requests if p.endswith("/orders")] == [400]


def test_a_jwt_signed_by_another_key_is_refused_and_translated(stand):
    name, secret, _ = make_api_key()
    stranger = CoinbaseClient(stand.api_key, secret, base_url=stand.base_url, ca_bundle=stand.ca_file, retry=FAST)
    with pytest.raises(VenueAuthError, match="401"):
        CoinbaseGateway(stranger).balances()
    assert stand.auth_failures and "bad token" in stand.auth_failures[0]


def test_a_fill_that_arrives_late_is_picked_up_by_the_next_poll(stand):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0.1, poll_every=0.02)
    stand.knobs.fill_market = "late"
    request = market()
    assert [r.kind for r in gateway.submit(request, Decimal(120), T0)] == [ReportKind.ACCEPTED]
    assert gateway.poll(T0) == []
    stand.release_fills()
    (fill,) = gateway.poll(T0 + STEP)
    assert fill.kind is ReportKind.FILL and fill.quantity == Decimal("0.5")
    assert gateway.poll(T0 + STEP) == []


def test_a_fill_listed_twice_is_reported_once_and_recorded_once(stand, app):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0.2, poll_every=0.02)
    stand.knobs.duplicate_fills = True
    meta = EventMeta(T0, "test")
    request = market()
    order = Order.place(request.order_id, meta, product="BTC-USD", side="BUY", order_type="MARKET",
                        quantity=request.quantity)
    order.submit(meta)
    reports = gateway.submit(request, Decimal(120), T0) + gateway.poll(T0)
    fills = [r for r in reports if r.kind is ReportKind.FILL]
    assert len(fills) == 1
    order.accept(meta, reports[0].venue_order_id)
    for report in fills * 2:  # even if a fill were reported twice, the order books it once
        order.fill(meta, fill_id=report.fill_id, quantity=report.quantity, price=report.price, fee=report.fee,
                   fee_currency=report.fee_currency, liquidity=report.liquidity)
    app.record_in_order(order.collect_events())
    stored = app.repository.get(request.order_id)
    assert stored.status is OrderStatus.FILLED and stored.filled_quantity == Decimal("0.5")
    assert len(stored.fill_ids) == 1


def test_a_partial_fill_then_a_cancel_leaves_the_rest_unfilled(stand, app):
    gateway = CoinbaseGateway(client_for(stand), fill_wait=0)
    order_id = uuid.uuid4()
    request = OrderRequest(order_id, client_order_id(order_id), "BTC-USD", OrderSide.BUY, OrderType.LIMIT,
                           Decimal("1"), limit_price=Decimal("110.50"))
    meta = EventMeta(T0, "test")
    order = Order.place(order_id, meta, product="BTC-USD", side="BUY", order_type="LIMIT", quantity=Decimal(1),
                        limit_price=Decimal("110.50"))
    order.submit(meta)
    (accepted,) = gateway.submit(request, Decimal(120), T0)
    assert stand.orders[accepted.venue_order_id].configuration == {
        "limit_limit_gtc": {"base_size": "1", "limit_price": "110.5", "post_only": False}}
    stand.fill(accepted.venue_order_id, Decimal("0.4"))
    reports = [accepted, *gateway.poll(T0 + STEP), *gateway.cancel(order_id, T0 + 2 * STEP)]
    assert [r.kind for r in reports] == [ReportKind.ACCEPTED, ReportKind.FILL, ReportKind.CANCELLED]
    assert "0.6 of 1 unfilled" in reports[-1].reason
    order.accept(meta, accepted.venue_order_id)
    fill = reports[1]
    order.fill(meta, fill_id=fill.fill_id, quantity=fill.quantity, price=fill.price, fee=fill.fee,
               fee_currency=fill.fee_currency, liquidity=fill.liquidity)
    order.cancel(meta, reports[2].reason)
    app.record_in_order(order.collect_events())
    stored = app.repository.get(order_id)
    assert stored.status is OrderStatus.CANCELLED and stored.filled_quantity == Decimal("0.4")
    assert stand.orders[accepted.venue_order_id].status == "CANCELLED"


def test_cancel_all_cancels_only_the_orders_this_bot_placed(stand):
    """Several bots (and people) share one account: a bot's cancel-all touches only its own orders."""
    ours = CoinbaseGateway(client_for(stand), fill_wait=0)
    other_bot = CoinbaseGateway(client_for(stand), fill_wait=0)
    order_id, theirs_id = uuid.uuid4(), uuid.uuid4()
    request = OrderRequest(order_id, client_order_id(order_id, "paper-btc-usd"), "BTC-USD", OrderSide.BUY,
                           OrderType.LIMIT, Decimal("1"), limit_price=Decimal("90"))
    ours.submit(request, Decimal(120), T0)
    other_bot.submit(OrderRequest(theirs_id, client_order_id(theirs_id, "paper-eth-usd"), "BTC-USD", OrderSide.BUY,
                                  OrderType.LIMIT, Decimal("1"), limit_price=Decimal("80")), Decimal(120), T0)
    client_for(stand).create_order("someone-else-1", "BTC-USD", "SELL",
                                   {"limit_limit_gtc": {"base_size": "2", "limit_price": "500", "post_only": False}})
    assert len(ours.open_orders()) == 3
    reports = ours.cancel_all(T0)
    assert [(r.kind, r.order_id) for r in reports] == [(ReportKind.CANCELLED, order_id)]
    still_open = {o.client_order_id: o.order_id for o in ours.open_orders()}
    assert still_open == {client_order_id(theirs_id, "paper-eth-usd"): theirs_id, "someone-else-1": None}


def test_candles_are_paged_within_the_venues_limit(tmp_path):
    stand = CoinbaseStandIn(tmp_path, granularity="1h").start()
    try:
        hours = [Candle("BTC-USD", "1h", T0 + timedelta(hours=i), Decimal(10), Decimal(11), Decimal(9), Decimal(10),
                        Decimal(1)) for i in range(800)]
        stand.set_history(hours)
        client = client_for(stand, keys=False)
        pages = list(fetch_candles(client, "BTC-USD", "1h", T0, T0 + timedelta(hours=800), client.server_time()))
        assert [len(p) for p in pages] == [350, 350, 100]
        assert [c.start for p in pages for c in p] == [c.start for c in hours]
        assert all(s == 200 for _, _, s in stand.requests)  # the stand-in answers 400 past 350 candles
    finally:
        stand.stop()


def test_the_websocket_dropping_mid_candle_is_reconnected_and_the_gap_backfilled(stand):
    stream = CandleStream(client_for(stand, keys=False), "BTC-USD", "5m", ws_url=stand.ws_url, stale_after=1.0,
                          reconnect_wait=0.05, rest_interval=0.01)
    stream.start(after=T0 + 20 * STEP)
    try:
        wait_for(lambda: any(m.get("channel") == "candles" for m in stand.subscriptions), what="a candles subscription")
        delivered: list[Candle] = []

        def take(n):
            while len(delivered) < n:
                got = stream.next_closed(timeout=5)
                assert got is not None, f"no candle closed; delivered {len(delivered)}; stats {stream.stats}"
                delivered.append(got)

        stand.trade(candle(20), updates=3)
        stand.trade(candle(21))
        take(1)
        stand.trade(candle(22), updates=2)  # the socket drops in the middle of this candle
        take(2)
        stand.drop_websockets()
        for i in (23, 24, 25):
            stand.advance_silently(candle(i))  # trades nobody hears of while the socket is down
        take(5)
        assert [c.start for c in delivered] == [T0 + i * STEP for i in (20, 21, 22, 23, 24)]
        assert delivered[3] == candle(23)
        assert stream.stats.reconnects >= 1
        subscribes = [m for m in stand.subscriptions if m.get("type") == "subscribe" and m.get("channel") == "candles"]
        assert len(subscribes) >= 2  # subscribed again after the reconnect
        assert stream.next_closed(timeout=0.3) is None  # candle 25 is still open
    finally:
        stream.stop()


def test_a_quiet_websocket_is_replaced(stand):
    stand.heartbeat_every = 3600  # the venue goes silent (no heartbeats)
    stream = CandleStream(client_for(stand, keys=False), "BTC-USD", "5m", ws_url=stand.ws_url, stale_after=0.3,
                          reconnect_wait=0.05)
    stream.start(after=T0 + 20 * STEP)
    try:
        wait_for(lambda: stream.stats.reconnects >= 2, timeout=5, what="reconnects of a silent feed")
    finally:
        stream.stop()
