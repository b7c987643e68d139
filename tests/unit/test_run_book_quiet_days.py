"""A book that keeps no closed days folds the same figures as one that does (days close with their end point
only), and its equity points at an unchanged equity (``unchanged_points``, days found by bisection) are the
points decided one at a time, whatever the bar, the window and where the points start in the day."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from domain.order import OrderSide
from domain.run_book import RunBook

T0 = datetime(2024, 5, 1, 21, tzinfo=timezone.utc)


def traded_book(keep: bool, window_minutes: int) -> RunBook:
    book = RunBook(rapid_loss_window=timedelta(minutes=window_minutes), keep_closed_days=keep)
    book.deposit(T0, D(10000))
    for minutes, close in ((0, D(100)), (15, D(97)), (30, D(95))):
        at = T0 + timedelta(minutes=minutes)
        book.step(at, "BTC-USD", close)
        book.decided(at)
        if minutes == 0:
            book.fill(at, "BTC-USD", OrderSide.BUY, D(10), D(100), D(1))
    book.fill(T0 + timedelta(minutes=30), "BTC-USD", OrderSide.SELL, D(10), D(95), D(1))
    return book


def state(book: RunBook) -> tuple:
    return (book.state(), list(book.recent_equity), book.equity(), book.peak_equity, book.max_drawdown_pct,
            book.breaker_peak, book.day_figures())


@pytest.mark.parametrize("step_minutes, count, window", [(1, 3000, 90), (60, 200, 60), (7, 700, 1), (180, 40, 600),
                                                         (1, 1, 90), (1440, 5, 2000)])
def test_a_book_without_closed_days_and_points_in_bulk_fold_the_same_figures(step_minutes, count, window):
    ats = [T0 + timedelta(minutes=30 + step_minutes * (i + 1)) for i in range(count)]
    kept, one_by_one, at_once = (traded_book(True, window), traded_book(False, window), traded_book(False, window))
    for book in (kept, one_by_one):
        for at in ats:
            book.step(at, "BTC-USD", D(90))
            book.decided(at)
    at_once.unchanged_points(ats)
    at_once.mark("BTC-USD", D(90))
    assert state(at_once) == state(one_by_one) == state(kept)
    assert not one_by_one.closed_days and not at_once.closed_days
    assert len(kept.closed_days) == (ats[-1].date() - T0.date()).days
