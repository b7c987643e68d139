"""Quiet stretches of a run: its candles with their decisions, flat, in one UTC day, walked at once.

Most of a backtest's log is a run's candles each followed by its HOLD decision while it holds no position
(98.6% of the steps of the projections benchmark's log). Between such steps nothing moves the run's equity
(its cash), so the decisions are ``RunBook.unchanged_points`` and the rows the money projections write for them
differ only by their candle: the walk (projections/ledger/walk.py) hands the stretch to ``walk_quiet``, which
sets the marks and the book as the last step leaves them and asks each projection's ``on_quiet`` for what its
``on_step``/``on_decision`` would have noted step by step (the backtest does the same with
application/trading/quiet_candles.py). tests/integration/test_money_quiet_stretches.py holds the tables equal
to the step-by-step walk's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from projections.ledger.book import Book, Candle, Event
from projections.ledger.page import _time

__all__ = ["QUIET_FROM", "quiet_end", "walk_quiet"]

QUIET_FROM = 3
"""Quiet stretches of at least this many steps are walked at once."""


class QuietLedger(Protocol):
    """What a quiet stretch needs of the walk's ledger (projections/ledger/walk.py ``Ledger``)."""

    touched: set[str]
    marks: dict[tuple[str, str, int], Decimal]

    def on_quiet(self, book: Book, steps: list[Event], closes: list[Decimal]) -> None: ...


def quiet_end(book: Book | None, events: list[Event], i: int) -> int:
    """Where the quiet stretch of ``book`` starting at ``events[i]`` ends (``i``: there is none).

    A quiet stretch is a run of the book's own steps (a CandleClosed of its run, product and granularity), each
    with its decision riding on it, dated in the book's current UTC day, which a decision already started,
    while the book holds no position."""
    if book is None or book.current is None or not book.current.started or book.day_end is None:
        return i
    if any(p.quantity for p in book.portfolio.positions.values()):
        return i
    run, product, granularity, end = book.run, book.product, book.granularity, book.day_end
    j, count = i, len(events)
    while j < count:
        e = events[j]
        if (e.dnid is None or e.type != "CandleClosed" or e.run != run or e.product != product
                or e.granularity != granularity or e.at >= end or e.dat >= end):
            break
        j += 1
    return j


def walk_quiet(ledger: QuietLedger, book: Book, steps: list[Event]) -> None:
    """A quiet stretch (``quiet_end``) walked at once: the same marks, book and projections' rows as step by step."""
    ledger.touched.add(book.run)
    marks = ledger.marks
    closes = []
    for e in steps:
        close = marks[(e.product, e.granularity, e.start)] = Decimal(e.close)
        closes.append(close)
    last = steps[-1]
    book.candle = Candle(last.product, last.start, last.at, closes[-1], last.nid)
    book.marks[last.product] = closes[-1]
    book.unchanged_points([_time(e.dat) for e in steps])
    ledger.on_quiet(book, steps, closes)
