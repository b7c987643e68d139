"""The run book's equity points at an unchanged equity (a flat run's quiet candles) and a run's ids in bulk."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from domain.ids import DeterministicIds
from domain.order import OrderSide
from domain.run_book import RunBook

T0 = datetime(2024, 5, 1, 21, tzinfo=timezone.utc)


def book_after_a_losing_trade() -> RunBook:
    book = RunBook(rapid_loss_window=timedelta(minutes=90), keep_closed_days=True)
    book.deposit(T0, D(10000))
    book.step(T0, "BTC-USD", D(100))
    book.decided(T0)
    book.fill(T0, "BTC-USD", OrderSide.BUY, D(10), D(100), D(1))
    for minutes, close in ((15, D(97)), (30, D(95))):
        book.step(T0 + timedelta(minutes=minutes), "BTC-USD", close)
        book.decided(T0 + timedelta(minutes=minutes))
    book.fill(T0 + timedelta(minutes=30), "BTC-USD", OrderSide.SELL, D(10), D(95), D(1))
    return book


def state(book: RunBook):
    return (book.state(), list(book.recent_equity), book.closed_days, book.equity(), book.peak_equity,
            book.max_drawdown_pct, book.breaker_peak)


@pytest.mark.parametrize("step_minutes, count", [(1, 5), (15, 40), (60, 100), (7, 700)])
def test_unchanged_points_are_decided_at_each_point_while_flat(step_minutes, count):
    ats = [T0 + timedelta(minutes=30 + step_minutes * (i + 1)) for i in range(count)]  # across UTC days
    one_by_one, at_once = book_after_a_losing_trade(), book_after_a_losing_trade()
    for at in ats:
        one_by_one.step(at, "BTC-USD", D(90))
        one_by_one.decided(at)
    at_once.unchanged_points(ats)
    at_once.mark("BTC-USD", D(90))
    assert state(at_once) == state(one_by_one)
    assert len(one_by_one.closed_days) == len(at_once.closed_days) >= (1 if step_minutes * count > 200 else 0)


def test_new_ints_are_the_ids_new_id_gives_one_at_a_time():
    seed = uuid.UUID("00000000-0000-4000-8000-00000000abcd")
    one, bulk = DeterministicIds(seed), DeterministicIds(seed)
    expected = [one.new_id().int for _ in range(1203)]
    assert [bulk.new_int(), *bulk.new_ints(1000), bulk.new_id().int, *bulk.new_ints(201)] == expected
    assert expected[6] == uuid.uuid5(seed, "7").int and bulk.count == one.count == 1203
