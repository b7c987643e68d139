"""Several money projections at one position apply a page in one walk of the books (a rebuild, a catch-up)."""

from __future__ import annotations

import duckdb

from projections.ledger.book import Book, Event
from projections.ledger.carry import Carry
from projections.ledger.day_rows import DayRows
from projections.ledger.walk import Ledger

__all__ = ["apply_together", "walk_together"]


_PER_EVENT = ("on_step", "on_decision", "on_fill", "on_cash", "on_day", "on_update", "flush")


def _nothing(*args) -> None:
    return None


def _calls(hooks: list):
    """One hook that calls ``hooks`` (bound methods of the members), in order."""
    def call(*args):
        for hook in hooks:
            hook(*args)
    return call


def _flushes(members: list[Ledger]):
    """The members' ``flush``, the run book's day figures computed once for every ``DayRows`` member that has a
    day row pending (pnl and risk_usage read the same figures of the same book at the same instant)."""
    plan = [(m, "day") if isinstance(m, DayRows) and type(m).flush is DayRows.flush else (m, m.flush)
            for m in members if type(m).flush is not Ledger.flush]

    def flush(book: Book) -> None:
        figures = None
        for member, how in plan:
            if how == "day":
                pending = member.pending.pop(book.run, None)
                if pending is not None:
                    if figures is None:
                        figures = book.day_figures()
                    member.day_row(book, figures, pending)
            else:
                how(book)

    return flush


def _each(hook: str):
    """A hook of ``_Together`` that calls the same hook of every member, in order."""

    def call(self, *args):
        for member in self.members:
            getattr(member, hook)(*args)

    call.__name__ = hook
    return call


class _Together(Ledger):
    """One walk of a batch for several money projections at the same position (a rebuild, a catch-up).

    The books are walked once and every hook is handed to each member, in the order each one's own
    walk would call it; the members keep their own output rows and ``Book.x`` entries (``x_keys``,
    distinct). Each member's tables get exactly what its own ``apply`` would write: its state rows
    (the runs it touched, its x entries only), orders and marks. Books are read from every member's
    state table, each member's x entries from its own.
    """

    def __init__(self, members: list[Ledger]):
        self.members = members
        self.name = members[0].name  # orders and marks are the same in every member's tables
        self.extra_types = tuple(dict.fromkeys(t for m in members for t in m.extra_types))
        for hook in _PER_EVENT:  # the walk calls these per event: only the members that define them, no loop for one
            mine = [getattr(m, hook) for m in members if getattr(type(m), hook) is not getattr(Ledger, hook)]
            setattr(self, hook, mine[0] if len(mine) == 1 else _calls(mine) if mine else _nothing)
        if sum(isinstance(m, DayRows) for m in members) > 1:
            self.flush = _flushes(members)
        self.quiet = all(m.quiet for m in members)  # a quiet stretch at once only when every member notes one
        self.on_quiet = _calls([m.on_quiet for m in members])

    def _load(self, con: duckdb.DuckDBPyConnection, after: int, events: list[Event], carry: Carry | None = None) -> None:
        super()._load(con, after, events, carry)
        self.extra_touched: dict[str, set[str]] = {m.name: set() for m in self.members}
        for m in self.members:
            m.books, m.glob = self.books, self.glob

    def _load_books(self, con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, Book]:
        books: dict[str, Book] = {}
        for m in self.members:
            for key, text in con.execute(
                    f"SELECT key, state FROM {m.name}__state WHERE list_contains(?, key)", [keys]).fetchall():
                book = Book.load(key, text)
                mine = {k: v for k, v in book.x.items() if k in m.x_keys}
                if key in books:
                    books[key].x.update(mine)
                else:
                    book.x = mine
                    books[key] = book
        return books

    def _flushed(self) -> set[str]:
        return self.touched.union(*self.extra_touched.values())

    def _other(self, e: Event) -> None:
        for m in self.members:
            if e.type in m.extra_types:
                book = None
                if e.run:
                    book = self.books.get(e.run)
                    if book is None:
                        book = self.books[e.run] = Book(run=e.run)
                    self.extra_touched[m.name].add(e.run)
                m.on_other(book, e)

    def _writers(self) -> list[tuple[Ledger, set[str], tuple[str, ...] | None]]:
        """Each member, with the runs the walk and its own hooks touched and its entries of ``Book.x``."""
        return [(m, self.touched | self.extra_touched[m.name], m.x_keys) for m in self.members]

    # Every hook is handed to each member in turn, in the order its own walk would call it.
    begin = _each("begin")
    thaw = _each("thaw")
    # (the per-event hooks, _PER_EVENT, are set per instance in __init__)


def apply_together(con: duckdb.DuckDBPyConnection, after: int, members: list[Ledger]) -> None:
    """Apply ``batch_events`` after ``after`` to money projections at that same position in one walk;
    their tables end exactly as if each had applied it on its own (in the caller's transaction)."""
    if len(members) == 1:
        members[0].apply(con, after)
    else:
        _Together(list(members)).apply(con, after)


def walk_together(members: list[Ledger]) -> Ledger:
    """The walk of money projections at one position: ``walk``, then ``writes`` and ``carry`` (the projector's
    pipelined path, projections/engine/runner.py); their tables end as ``apply_together`` leaves them."""
    return members[0] if len(members) == 1 else _Together(list(members))
