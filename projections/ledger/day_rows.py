"""The money projections with one row per run and UTC day (pnl_daily, risk_usage)."""

from __future__ import annotations

import duckdb

from domain.accounting import FillEffect
from projections.ledger.book import Book, Event
from projections.ledger.walk import Ledger

__all__ = ["DayRows"]


class DayRows(Ledger):
    """A money projection with one row per run and UTC day, written as at the day's last event: the hooks
    note the latest event that touched the day, ``flush`` (before the day changes, and at the end of a page)
    hands ``day_row`` the run book's figures of the day then."""

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        self.pending: dict[str, tuple[int, int]] = {}  # run -> (at, nid) of the last event of its day row

    def touch(self, book: Book, event: Event) -> None:
        if book.current is not None:
            self.pending[book.run] = (event.at, event.nid)

    def on_step(self, book: Book, event: Event) -> None:
        self.touch(book, event)

    def on_decision(self, book: Book, event: Event) -> None:
        self.touch(book, event)

    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None:
        self.touch(book, event)

    def on_cash(self, book: Book, event: Event) -> None:
        self.touch(book, event)

    def on_update(self, book: Book, event: Event) -> None:
        self.touch(book, event)

    quiet = True

    def on_quiet(self, book: Book, steps: list[Event], closes: list) -> None:
        if book.current is not None:  # the last touch: the last step's decision
            last = steps[-1]
            self.pending[book.run] = (last.dat, last.dnid)

    def flush(self, book: Book) -> None:
        pending = self.pending.pop(book.run, None)
        if pending is not None:
            self.day_row(book, book.day_figures(), pending)

    def day_row(self, book: Book, figures, pending: tuple[int, int]) -> None: ...
