"""What the walk of a page leaves for the walk of the next, while the page is being written
(projections/engine/group_writes.py), and the candle closes a walk reads besides its page's."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from projections.ledger.book import Book
from projections.ledger.marks import Frontier

__all__ = ["Carry", "recorded_closes"]


class Carry:
    """What the walk of a page leaves for the walk of the next (projections/engine/group_writes.py writes a page
    while the next is walked): the books it walked, as it left them; the orders it changed (None: done); its candle
    closes (``marks``: the page's, which the marks tables may not hold yet) and the marks tables' frontier once
    they are written (``frontier``, projections/ledger/marks.py)."""

    __slots__ = ("books", "frontier", "glob", "marks", "orders")

    def __init__(self, books: dict[str, Book], glob: Book | None, orders: dict[str, tuple | None], marks: pa.Table,
                 frontier: Frontier | None = None):
        self.books, self.glob, self.orders, self.marks, self.frontier = books, glob, orders, marks, frontier

    def orders_of(self, ids: list[str]) -> tuple[dict[str, tuple], list[str]]:
        """Of the orders ``ids``: those the page before left (not done), and the ids it did not change."""
        return ({o: self.orders[o] for o in ids if self.orders.get(o) is not None},
                [o for o in ids if o not in self.orders])

    def closes(self, named: set[tuple[str, int]]) -> list[tuple]:
        """The page's (product, granularity, start, close) of the candles ``named`` by (product, start)."""
        marks = self.marks
        if not named or marks.num_rows == 0:
            return []
        near = marks.filter(pc.and_(
            pc.is_in(marks.column("product"), pa.array(sorted({p for p, _ in named}), pa.string())),
            pc.is_in(marks.column("start_us"), pa.array(sorted({s for _, s in named}), pa.int64()))))
        rows = zip(*(near.column(c).to_pylist() for c in ("product", "granularity", "start_us", "close")))
        return [row for row in rows if (row[0], row[2]) in named]


def recorded_closes(con: duckdb.DuckDBPyConnection, table: str, named: set[tuple[str, int]],
                    carry: Carry | None) -> dict[tuple[str, str, int], Decimal]:
    """The closes recorded before a page of the candles ``named`` by (product, start): the marks ``table``'s, the
    page before's (``carry``: not written yet, so the later ones) winning."""
    closes: dict[tuple[str, str, int], Decimal] = {}
    if not named:
        return closes
    starts = [start for _, start in named]
    for p, g, s, c in con.execute(  # (literal bounds: DuckDB skips the row groups outside them)
            f"""SELECT product, granularity, start_us, close FROM {table}
            WHERE start_us BETWEEN {int(min(starts))} AND {int(max(starts))}
            AND list_contains(?, product)""", [sorted({p for p, _ in named})]).fetchall():
        if (p, s) in named:
            closes[(p, g, s)] = Decimal(c)
    if carry is not None:
        for p, g, s, c in carry.closes(named):
            closes[(p, g, s)] = Decimal(c)
    return closes
