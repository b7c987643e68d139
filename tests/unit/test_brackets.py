"""The domain's bracket rules: which level a closed candle fires, and how fills arm and void brackets."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from domain.brackets import Bracket, BracketBook, BracketHit, BracketLevel, bracket_after_fill
from domain.market import Candle
from domain.order import OrderSide

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
BTC = "BTC-USD"
ENTRY = uuid.UUID(int=1)


def candle(hour: int, open_, high, low, close, product=BTC) -> Candle:
    return Candle(product, "1h", T0 + hour * HOUR, D(open_), D(high), D(low), D(close), D("10"))


def long_bracket(stop="39000", take="42000") -> Bracket:
    return Bracket(BTC, ENTRY, True, None if stop is None else D(stop), None if take is None else D(take), T0)


def short_bracket(stop="41000", take="38000") -> Bracket:
    return Bracket(BTC, ENTRY, False, None if stop is None else D(stop), None if take is None else D(take), T0)


def test_long_stop_fires_when_the_low_touches_it():
    assert long_bracket().hit_by(candle(0, 40000, 40100, 39000, 39500)) == BracketHit(BracketLevel.STOP_LOSS, D("39000"))


def test_long_take_profit_fires_when_the_high_touches_it():
    hit = long_bracket().hit_by(candle(0, 40000, 42500, 39900, 42100))
    assert hit == BracketHit(BracketLevel.TAKE_PROFIT, D("42000"))
    assert not hit.is_stop_loss


def test_long_stop_wins_when_stop_and_take_profit_touch_the_same_candle():
    hit = long_bracket().hit_by(candle(0, 40000, 42000, 39000, 40000))
    assert (hit.level, hit.price, hit.both_touched, hit.is_stop_loss) == (BracketLevel.STOP_LOSS, D("39000"), True, True)


def test_short_stop_fires_on_the_high_and_take_profit_on_the_low():
    assert short_bracket().hit_by(candle(0, 40000, 41000, 39900, 40500)).level is BracketLevel.STOP_LOSS
    assert short_bracket().hit_by(candle(0, 40000, 40100, 38000, 38500)) == BracketHit(
        BracketLevel.TAKE_PROFIT, D("38000"))
    # A long bracket's sides are the other way round: the same candles fire nothing there.
    assert long_bracket(stop="38000", take="41000").hit_by(candle(0, 40000, 40900, 38100, 40500)) is None


def test_short_stop_wins_when_stop_and_take_profit_touch_the_same_candle():
    hit = short_bracket().hit_by(candle(0, 40000, 41500, 37500, 40000))
    assert (hit.level, hit.price, hit.both_touched) == (BracketLevel.STOP_LOSS, D("41000"), True)


def test_gap_through_the_stop_triggers_at_the_stop_price_not_the_candle_price():
    # The candle opens far below the long stop: the trigger price is still the stop level.
    assert long_bracket().hit_by(candle(0, 35000, 35500, 34000, 35200)) == BracketHit(
        BracketLevel.STOP_LOSS, D("39000"))
    assert short_bracket().hit_by(candle(0, 45000, 46000, 44000, 45500)) == BracketHit(
        BracketLevel.STOP_LOSS, D("41000"))


def test_untouched_levels_missing_levels_older_candles_and_other_products_fire_nothing():
    inside = candle(0, 40000, 41000, 39500, 40500)
    assert long_bracket().hit_by(inside) is None
    assert long_bracket(stop=None).hit_by(candle(0, 40000, 40100, 30000, 35000)) is None
    assert long_bracket(take=None).hit_by(candle(0, 40000, 50000, 39900, 49000)) is None
    assert long_bracket().hit_by(candle(-1, 40000, 40100, 30000, 35000)) is None  # started before arming
    assert long_bracket().hit_by(candle(0, 40000, 40100, 30000, 35000, product="ETH-USD")) is None


def after_fill(current, side, before, after, stop="39000", take=None, order_id=uuid.UUID(int=2)):
    return bracket_after_fill(current, product=BTC, order_id=order_id, side=side, before=D(before), after=D(after),
                              stop_loss_price=None if stop is None else D(stop),
                              take_profit_price=None if take is None else D(take), at=T0 + HOUR)


def test_an_entry_with_a_stop_arms_a_bracket_on_the_side_of_the_position():
    armed = after_fill(None, OrderSide.BUY, "0", "0.1")
    assert armed == Bracket(BTC, uuid.UUID(int=2), True, D("39000"), None, T0 + HOUR)
    assert after_fill(None, "SELL", "0", "-0.1", stop="41000").long is False


def test_closing_or_flipping_voids_the_bracket_and_a_plain_fill_keeps_it():
    current = long_bracket()
    assert after_fill(current, OrderSide.SELL, "0.1", "0", stop=None) is None
    assert after_fill(current, OrderSide.SELL, "0.1", "-0.1", stop=None) is None
    assert after_fill(current, OrderSide.SELL, "0.2", "0.1", stop=None) is current  # partly closed: kept
    assert after_fill(current, OrderSide.BUY, "0.1", "0.2", stop=None, take=None) is current  # added, no levels
    flipped = after_fill(current, OrderSide.SELL, "0.1", "-0.1", stop="41000")
    assert (flipped.long, flipped.stop_loss_price) == (False, D("41000"))


def test_book_keeps_one_bracket_per_product_and_disarms_the_one_that_fires():
    book = BracketBook()
    book.arm(long_bracket())
    book.replace("ETH-USD", Bracket("ETH-USD", ENTRY, True, D("2000"), None, T0))
    assert book.fire(candle(0, 40000, 40100, 39900, 40000)) is None
    bracket, hit = book.fire(candle(1, 40000, 40100, 38000, 38500))
    assert (bracket, hit.level) == (long_bracket(), BracketLevel.STOP_LOSS)
    assert book.get(BTC) is None and book.fire(candle(2, 40000, 40100, 38000, 38500)) is None
    assert book.disarm("ETH-USD").stop_loss_price == D("2000") and book.disarm("ETH-USD") is None
