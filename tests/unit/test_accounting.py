"""The account ledger: cash, positions, realized P&L and round trips from fills."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from domain.accounting import InsufficientFunds, MissingMark, Portfolio, PositionChange
from domain.events import FieldProblem
from domain.order import OrderSide

BUY, SELL = OrderSide.BUY, OrderSide.SELL
BTC = "BTC-USD"


def funded(cash="10000") -> Portfolio:
    portfolio = Portfolio()
    portfolio.deposit(D(cash))
    return portfolio


def test_buy_then_sell_round_trip_with_fees_moves_cash_by_pnl_minus_fees():
    book = funded()
    opened = book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("24.00"))
    assert opened.change is PositionChange.OPENED
    assert book.cash == D("10000") - D("4000.0") - D("24.00")
    closed = book.apply_fill(BTC, SELL, D("0.1"), D("41000"), D("24.60"))
    assert closed.change is PositionChange.CLOSED
    assert closed.realized_pnl == D("100.0")
    assert book.cash == D("10000") + D("100") - D("24.00") - D("24.60")
    assert book.realized_pnl == D("100")
    assert book.fees_paid == D("48.60")
    assert book.net_realized_pnl == D("51.40")
    assert closed.round_trip is not None and closed.round_trip.net_pnl == D("51.40")
    assert book.position(BTC).quantity == 0 and book.position(BTC).average_entry is None
    assert (book.trades, book.wins, book.consecutive_losses) == (1, 1, 0)


def test_partial_fills_of_an_entry_average_to_the_weighted_entry():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.04"), D("40000"), D("0"))
    effect = book.apply_fill(BTC, BUY, D("0.06"), D("40100"), D("0"))
    assert effect.change is PositionChange.INCREASED
    # (0.04 * 40000 + 0.06 * 40100) / 0.1 = 40060
    assert book.position(BTC).average_entry == D("40060")
    assert effect.average_entry == D("40060")


def test_partial_reduction_realizes_against_average_entry_and_keeps_it():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("0"))
    book.apply_fill(BTC, BUY, D("0.1"), D("42000"), D("0"))
    effect = book.apply_fill(BTC, SELL, D("0.05"), D("43000"), D("1.29"))
    assert effect.change is PositionChange.REDUCED
    assert effect.realized_pnl == D("100.00")  # (43000 - 41000) * 0.05
    assert effect.closed_quantity == D("0.05")
    assert book.position(BTC).quantity == D("0.15")
    assert book.position(BTC).average_entry == D("41000")
    assert book.trades == 0  # still open: no round trip yet


def test_round_trip_closed_in_pieces_realizes_exactly_sold_minus_bought():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.3"), D("40000.01"), D("0"))
    book.apply_fill(BTC, SELL, D("0.1"), D("40100.03"), D("0"))
    book.apply_fill(BTC, SELL, D("0.1"), D("39999.99"), D("0"))
    last = book.apply_fill(BTC, SELL, D("0.1"), D("40300.00"), D("0"))
    sold = D("0.1") * (D("40100.03") + D("39999.99") + D("40300.00"))
    bought = D("0.3") * D("40000.01")
    assert book.realized_pnl == sold - bought
    assert last.round_trip.realized_pnl == sold - bought
    assert book.cash == D("10000") + sold - bought


def test_short_round_trip_profits_when_price_falls():
    book = funded()
    opened = book.apply_fill(BTC, SELL, D("0.1"), D("40000"), D("2"))
    assert book.position(BTC).quantity == D("-0.1")
    assert book.position(BTC).direction == "SHORT"
    assert book.cash == D("10000") + D("4000.0") - D("2")
    assert opened.average_entry == D("40000")
    assert book.unrealized_pnl(BTC, D("39000")) == D("100.0")
    closed = book.apply_fill(BTC, BUY, D("0.1"), D("39000"), D("2"))
    assert closed.realized_pnl == D("100.0")
    assert closed.round_trip.direction == "SHORT"
    assert book.cash == D("10000") + D("100") - D("4")
    assert (book.trades, book.wins) == (1, 1)


def test_fill_through_zero_closes_then_opens_at_the_fill_price_and_splits_the_fee():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("1"))
    effect = book.apply_fill(BTC, SELL, D("0.3"), D("41000"), D("3"))
    assert effect.change is PositionChange.FLIPPED
    assert effect.closed_quantity == D("0.1") and effect.opened_quantity == D("0.2")
    assert effect.realized_pnl == D("100.0")
    trip = effect.round_trip
    assert trip.fees == D("2")  # entry fee 1 + a third of the flip's fee 3
    assert trip.net_pnl == D("98.0")
    position = book.position(BTC)
    assert position.quantity == D("-0.2")
    assert position.average_entry == D("41000")
    assert position.fees == D("4")
    assert book.fees_paid == D("4")
    # the new short's trip carries the other two thirds of the fee
    closed = book.apply_fill(BTC, BUY, D("0.2"), D("41000"), D("0"))
    assert closed.round_trip.fees == D("2") and closed.round_trip.net_pnl == D("-2")


def test_losing_round_trips_count_a_streak_that_a_win_resets():
    book = funded()
    for _ in range(3):
        book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("1"))
        book.apply_fill(BTC, SELL, D("0.1"), D("39990"), D("1"))
    assert (book.trades, book.wins, book.losses, book.consecutive_losses) == (3, 0, 3, 3)
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("1"))
    book.apply_fill(BTC, SELL, D("0.1"), D("40100"), D("1"))
    assert (book.trades, book.wins, book.consecutive_losses) == (4, 1, 0)


def test_gross_gain_smaller_than_fees_counts_as_a_loss():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("24"))
    effect = book.apply_fill(BTC, SELL, D("0.1"), D("40100"), D("24"))
    assert effect.realized_pnl == D("10.0")
    assert not effect.round_trip.won
    assert (book.wins, book.consecutive_losses) == (0, 1)


def test_reset_loss_streak_starts_the_count_again():
    book = funded()
    book.apply_fill(BTC, BUY, D("1"), D("100"), D("0"))
    book.apply_fill(BTC, SELL, D("1"), D("90"), D("0"))
    book.reset_loss_streak()
    assert book.consecutive_losses == 0 and book.trades == 1


def test_equity_and_exposure_use_marks_for_long_and_short():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("0"))
    book.apply_fill("ETH-USD", SELL, D("1"), D("2000"), D("0"))
    marks = {BTC: D("42000"), "ETH-USD": D("2100")}
    # cash 10000 - 4000 + 2000 = 8000; + 0.1*42000 - 1*2100
    assert book.equity(marks) == D("10100.0")
    assert book.exposure(marks) == D("6300.0")
    assert book.unrealized_pnl(BTC, D("42000")) + book.unrealized_pnl("ETH-USD", D("2100")) == D("100.0")
    assert book.open_positions == 2


def test_equity_without_a_mark_for_an_open_position_is_refused():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("0"))
    with pytest.raises(MissingMark, match="BTC-USD"):
        book.equity({})


def test_equity_when_flat_is_cash():
    book = funded("500")
    assert book.equity({}) == D("500") and book.exposure({}) == D("0")


def test_withdraw_more_than_cash_is_refused():
    book = funded("100")
    with pytest.raises(InsufficientFunds):
        book.withdraw(D("100.01"))
    book.withdraw(D("40"))
    assert (book.cash, book.deposited, book.withdrawn) == (D("60"), D("100"), D("40"))


@pytest.mark.parametrize(
    "quantity, price, fee",
    [(0.1, D("1"), D("0")), (D("0"), D("1"), D("0")), (D("1"), D("-1"), D("0")), (D("1"), D("1"), D("-0.1"))],
)
def test_fill_with_float_or_out_of_range_values_is_refused(quantity, price, fee):
    with pytest.raises(FieldProblem):
        funded().apply_fill(BTC, BUY, quantity, price, fee)


def test_snapshot_is_a_frozen_copy_of_the_ledger():
    book = funded()
    book.apply_fill(BTC, BUY, D("0.1"), D("40000"), D("1"))
    snap = book.snapshot()
    book.apply_fill(BTC, SELL, D("0.1"), D("40000"), D("1"))
    assert snap.cash == D("5999.0")
    assert snap.positions[0].quantity == D("0.1") and snap.positions[0].average_entry == D("40000")
    assert snap.fees_paid == D("1") and snap.trades == 0
