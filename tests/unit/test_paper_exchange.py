"""The paper exchange: deterministic fills, fees, partial fills, brackets, cancels."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from application.ports import OrderRequest, ReportKind
from domain.market import Candle
from domain.order import Liquidity, OrderSide, OrderType
from infrastructure.venues.paper.exchange import PaperExchange

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
BTC = "BTC-USD"


def request(side="BUY", quantity="0.1", order_type="MARKET", limit=None, stop=None, take=None, n=None) -> OrderRequest:
    order_id = uuid.UUID(int=n) if n is not None else uuid.uuid4()
    return OrderRequest(
        order_id=order_id,
        client_order_id=f"tc-{order_id.hex}",
        product=BTC,
        side=OrderSide(side),
        order_type=OrderType(order_type),
        quantity=D(quantity),
        limit_price=None if limit is None else D(limit),
        stop_loss_price=None if stop is None else D(stop),
        take_profit_price=None if take is None else D(take),
    )


def candle(hour: int, low, high, volume="10", open_=None, close=None) -> Candle:
    low, high = D(low), D(high)
    return Candle(
        BTC, "1h", T0 + hour * HOUR, D(open_) if open_ else low, high, low, D(close) if close else high, D(volume)
    )


def kinds(reports):
    return [report.kind for report in reports]


def test_market_buy_fills_at_reference_plus_slippage_with_taker_fee():
    exchange = PaperExchange()
    reports = exchange.submit(request("BUY", "0.1"), D("40000"), T0)
    assert kinds(reports) == [ReportKind.ACCEPTED, ReportKind.FILL]
    fill = reports[1]
    assert fill.price == D("40020.00")  # 40000 * (1 + 5/10000)
    assert fill.quantity == D("0.1")
    assert fill.fee == D("24.01200000")  # 4002.000 * 60/10000
    assert (fill.liquidity, fill.fee_currency, fill.occurred_at) == (Liquidity.TAKER, "USD", T0)
    assert exchange.position(BTC) == D("0.1")


def test_market_sell_receives_less_and_rounds_against_the_seller():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1"), D("40000"), T0)
    fill = exchange.submit(request("SELL", "0.1"), D("40000.07"), T0)[1]
    assert fill.price == D("39980.06")  # 40000.07 * 0.9995 = 39980.069965 -> floor
    assert fill.fee == D("23.98803600")  # 3998.006 * 0.006
    assert exchange.position(BTC) == D("0")


def test_fee_is_rounded_up_to_the_fee_increment():
    fill = PaperExchange(slippage_bps=D(0)).submit(request("BUY", "0.00000001"), D("40000.01"), T0)[1]
    assert fill.fee == D("0.00000241")  # 0.0004000001 * 0.006 = 0.0000024000006 -> up


def test_limit_buy_fills_partially_against_candle_volume_across_candles_at_maker_fee():
    exchange = PaperExchange()
    order = request("BUY", "0.5", "LIMIT", limit="39900.00")
    assert kinds(exchange.submit(order, D("40000"), T0 + HOUR)) == [ReportKind.ACCEPTED]
    first = exchange.on_candle(candle(1, "39800", "40100", volume="2"))
    second = exchange.on_candle(candle(2, "39850", "40050", volume="2"))
    untouched = exchange.on_candle(candle(3, "39950", "40200", volume="50"))
    third = exchange.on_candle(candle(4, "39700", "39950", volume="50"))
    assert [r.quantity for r in first + second + third] == [D("0.2"), D("0.2"), D("0.1")]
    assert untouched == []
    assert all(r.price == D("39900.00") and r.liquidity is Liquidity.MAKER for r in first + second + third)
    assert first[0].fee == D("31.92000000")  # 0.2 * 39900 * 40/10000
    assert first[0].occurred_at == T0 + 2 * HOUR  # the candle's end
    assert exchange.open_order_ids == ()
    assert exchange.position(BTC) == D("0.5")


def test_limit_order_ignores_candles_from_before_it_was_accepted():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1", "LIMIT", limit="39900.00"), D("40000"), T0 + 2 * HOUR)
    assert exchange.on_candle(candle(1, "39000", "40100")) == []


def test_limit_order_on_zero_volume_candle_does_not_fill():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1", "LIMIT", limit="39900.00"), D("40000"), T0)
    assert exchange.on_candle(candle(0, "39000", "40100", volume="0")) == []


def test_limit_sell_fills_when_high_reaches_the_limit():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1"), D("40000"), T0)
    exchange.submit(request("SELL", "0.1", "LIMIT", limit="41000.00"), D("40000"), T0)
    assert exchange.on_candle(candle(0, "40000", "40999.99")) == []
    reports = exchange.on_candle(candle(1, "40500", "41000"))
    assert kinds(reports) == [ReportKind.FILL] and reports[0].price == D("41000.00")


def test_limit_without_price_or_off_the_price_grid_is_rejected():
    exchange = PaperExchange()
    missing = exchange.submit(request("BUY", "0.1", "LIMIT"), D("40000"), T0)
    off_grid = exchange.submit(request("BUY", "0.1", "LIMIT", limit="39900.005"), D("40000"), T0)
    assert kinds(missing + off_grid) == [ReportKind.REJECTED, ReportKind.REJECTED]
    assert "limit price" in missing[0].reason and "0.01" in off_grid[0].reason


def test_zero_or_off_grid_quantity_is_rejected():
    exchange = PaperExchange()
    assert exchange.submit(request("BUY", "0"), D("40000"), T0)[0].kind is ReportKind.REJECTED
    assert exchange.submit(request("BUY", "0.000000001"), D("40000"), T0)[0].kind is ReportKind.REJECTED


def test_sell_without_a_long_position_is_refused_as_a_short_by_default():
    exchange = PaperExchange()
    reports = exchange.submit(request("SELL", "0.1"), D("40000"), T0)
    assert kinds(reports) == [ReportKind.REJECTED]
    assert "short" in reports[0].reason and "position 0" in reports[0].reason


def test_sell_more_than_held_net_of_resting_sells_is_refused():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1"), D("40000"), T0)
    exchange.submit(request("SELL", "0.06", "LIMIT", limit="45000.00"), D("40000"), T0)
    reports = exchange.submit(request("SELL", "0.05"), D("40000"), T0)
    assert kinds(reports) == [ReportKind.REJECTED]
    assert "available 0.04" in reports[0].reason


def test_short_is_accepted_when_shorts_are_allowed():
    exchange = PaperExchange(allow_shorts=True)
    reports = exchange.submit(request("SELL", "0.1", stop="41000", take="38000"), D("40000"), T0)
    assert kinds(reports) == [ReportKind.ACCEPTED, ReportKind.FILL]
    assert exchange.position(BTC) == D("-0.1")
    triggered = exchange.on_candle(candle(1, "39000", "41500"))
    assert kinds(triggered) == [ReportKind.STOP_TRIGGERED] and triggered[0].trigger_price == D("41000")


def test_bracket_stop_wins_when_stop_and_take_profit_touch_the_same_candle():
    exchange = PaperExchange()
    entry = request("BUY", "0.1", stop="39000", take="42000")
    exchange.submit(entry, D("40000"), T0)
    reports = exchange.on_candle(candle(0, "38900", "42100"))
    assert kinds(reports) == [ReportKind.STOP_TRIGGERED]
    assert reports[0].trigger_price == D("39000")
    assert reports[0].order_id == entry.order_id and reports[0].quantity == D("0.1")
    assert exchange.bracket(BTC) is None
    assert exchange.on_candle(candle(1, "30000", "50000")) == []  # disarmed


def test_bracket_take_profit_triggers_when_only_it_is_touched():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1", stop="39000", take="42000"), D("40000"), T0)
    assert exchange.on_candle(candle(0, "39500", "41999.99")) == []
    reports = exchange.on_candle(candle(1, "41000", "42000"))
    assert kinds(reports) == [ReportKind.TAKE_PROFIT_TRIGGERED]
    assert reports[0].trigger_price == D("42000")


def test_bracket_is_armed_only_when_the_limit_entry_fills_and_reported_after_fills():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1", "LIMIT", limit="39900.00", stop="39000", take="42000"), D("40000"), T0)
    assert exchange.bracket(BTC) is None
    filled = exchange.on_candle(candle(0, "38000", "40000"))  # fills; the bracket starts with the next candle
    assert kinds(filled) == [ReportKind.FILL]
    assert exchange.bracket(BTC) is not None
    assert kinds(exchange.on_candle(candle(1, "38500", "40000"))) == [ReportKind.STOP_TRIGGERED]


def test_bracket_on_the_wrong_side_of_the_entry_is_rejected():
    exchange = PaperExchange()
    reports = exchange.submit(request("BUY", "0.1", stop="40100"), D("40000"), T0)
    assert kinds(reports) == [ReportKind.REJECTED] and "stop loss 40100" in reports[0].reason


def test_closing_the_position_disarms_its_bracket():
    exchange = PaperExchange()
    exchange.submit(request("BUY", "0.1", stop="39000"), D("40000"), T0)
    exchange.submit(request("SELL", "0.1"), D("40000"), T0)
    assert exchange.bracket(BTC) is None
    exchange.submit(request("BUY", "0.1", stop="39000"), D("40000"), T0)
    assert exchange.disarm(BTC) is not None and exchange.bracket(BTC) is None


def test_cancel_returns_cancelled_with_the_unfilled_rest_then_nothing():
    exchange = PaperExchange()
    order = request("BUY", "0.5", "LIMIT", limit="39900.00")
    exchange.submit(order, D("40000"), T0)
    exchange.on_candle(candle(0, "39800", "40100", volume="2"))
    reports = exchange.cancel(order.order_id, T0 + HOUR)
    assert kinds(reports) == [ReportKind.CANCELLED]
    assert reports[0].quantity == D("0.3") and reports[0].venue_order_id == "paper-order-1"
    assert exchange.cancel(order.order_id, T0 + HOUR) == []
    assert exchange.cancel(uuid.uuid4(), T0) == []
    assert exchange.on_candle(candle(1, "39000", "40100")) == []


def test_cancel_all_cancels_every_open_order_in_submission_order():
    exchange = PaperExchange()
    first = request("BUY", "0.1", "LIMIT", limit="39000.00", n=2)
    second = request("BUY", "0.1", "LIMIT", limit="38000.00", n=1)
    exchange.submit(first, D("40000"), T0)
    exchange.submit(second, D("40000"), T0)
    reports = exchange.cancel_all(T0 + HOUR)
    assert [r.order_id for r in reports] == [first.order_id, second.order_id]
    assert kinds(reports) == [ReportKind.CANCELLED] * 2
    assert exchange.cancel_all(T0) == []


def test_ids_are_deterministic_counters_and_a_resubmission_is_ignored():
    def run():
        exchange = PaperExchange()
        orders = [request("BUY", "0.1", n=1), request("BUY", "0.1", n=2)]
        reports = [r for order in orders for r in exchange.submit(order, D("40000"), T0)]
        assert exchange.submit(orders[0], D("40000"), T0) == []
        return [(r.kind, r.venue_order_id, r.fill_id, r.price, r.fee) for r in reports]

    first = run()
    assert first == run()
    assert [(venue, fill) for _, venue, fill, _, _ in first] == [
        ("paper-order-1", None), ("paper-order-1", "paper-1"), ("paper-order-2", None), ("paper-order-2", "paper-2"),
    ]


def test_fills_booked_in_the_portfolio_reconcile_with_cash_recomputed_from_fills_alone():
    from domain.accounting import Portfolio

    exchange = PaperExchange()
    book = Portfolio()
    book.deposit(D("10000"))
    sent: dict[uuid.UUID, OrderRequest] = {}

    def submit(order, price, at):
        sent[order.order_id] = order
        return exchange.submit(order, price, at)

    reports = submit(request("BUY", "0.0625", stop="39000.00", take="42000.00"), D("40000.00"), T0)
    reports += submit(request("BUY", "0.03", "LIMIT", limit="39950.00"), D("40000.00"), T0)
    reports += exchange.on_candle(candle(0, "39900", "40500", volume="0.2"))  # fills 0.02
    reports += exchange.on_candle(candle(1, "39940", "40600", volume="0.2"))  # fills 0.01
    reports += exchange.on_candle(candle(2, "40500", "42100"))
    trigger = reports[-1]
    assert trigger.kind is ReportKind.TAKE_PROFIT_TRIGGERED and trigger.quantity == D("0.0925")
    reports += submit(request("SELL", str(trigger.quantity)), trigger.trigger_price, trigger.occurred_at)

    fills = [r for r in reports if r.kind is ReportKind.FILL]
    for r in fills:
        book.apply_fill(BTC, sent[r.order_id].side, r.quantity, r.price, r.fee)
    signed = {OrderSide.BUY: D(-1), OrderSide.SELL: D(1)}
    recomputed = D("10000") + sum(signed[sent[r.order_id].side] * r.quantity * r.price - r.fee for r in fills)
    assert book.cash == recomputed
    assert book.position(BTC).quantity == 0 and exchange.position(BTC) == 0
    assert book.trades == 1 and book.fees_paid == sum(r.fee for r in fills)
    assert book.net_realized_pnl == recomputed - D("10000")
