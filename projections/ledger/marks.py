"""The money ledger's candle closes (``<name>__marks``): each page's closes written, and whether any is known.

A follower's page holds a few candles: they are matched by a condition on the table (``matching``); a
rebuild's page holds thousands: they are joined as a VALUES list or an arrow view. The page's candle starts
bound the statements by literals, so DuckDB skips the row groups outside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from projections.ledger.book import FEW, MATCHED, insert, matching, values_of

__all__ = ["Frontier", "beyond", "frontier", "marks_known", "page_view", "save_marks", "write_marks"]

_KEY = ["product", "granularity", "start_us"]


@contextmanager
def page_view(con: duckdb.DuckDBPyConnection, new: pa.Table) -> Iterator[str | None]:
    """The page's closes registered once as a view for the statements of several projections (None when they are
    few: the statements then take them as parameters)."""
    if new.num_rows <= FEW:
        yield None
        return
    con.register("_page_marks", new)
    try:
        yield "_page_marks"
    finally:
        con.unregister("_page_marks")


def save_marks(con: duckdb.DuckDBPyConnection, table: str, new: pa.Table, known: bool | None,
               view: str | None = None) -> None:
    """Write the page's closes ``new`` (also registered as ``view``, if given) into ``table``, first deleting their
    earlier rows unless ``known`` is False (no candle of the page has a row yet)."""
    if new.num_rows == 0:
        return
    if known is not False and new.num_rows <= MATCHED:
        condition, params = matching(new, _KEY)
        con.execute(f"DELETE FROM {table} AS t WHERE {_bounds(new)} AND ({condition})", params)
    elif known is not False:
        with _keys(con, table, new, view) as (keys, params):
            con.execute(f"""DELETE FROM {table} AS t USING {keys}
                WHERE {_bounds(new)} AND t.product = k.product AND t.granularity = k.granularity
                AND t.start_us = k.start_us""", params)
    if view is None:
        insert(con, table, new)
    else:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")


def marks_known(con: duckdb.DuckDBPyConnection, table: str, new: pa.Table, view: str | None = None) -> bool:
    """Whether any candle of ``new`` (also registered as ``view``, if given) already has a row in ``table``."""
    if new.num_rows == 0:
        return False
    if new.num_rows <= MATCHED:
        condition, params = matching(new, _KEY)
        return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table} AS t WHERE {_bounds(new)} AND ({condition}))",
                           params).fetchall()[0][0]
    with _keys(con, table, new, view) as (keys, params):
        return con.execute(f"""SELECT EXISTS (SELECT 1 FROM {table} AS t SEMI JOIN {keys}
            ON t.product = k.product AND t.granularity = k.granularity AND t.start_us = k.start_us
            WHERE {_bounds(new)})""", params).fetchall()[0][0]


def _bounds(marks: pa.Table) -> str:
    """The page's candle starts as literal bounds of ``t.start_us``."""
    bounds = pc.min_max(marks.column("start_us"))
    return f"t.start_us BETWEEN {int(bounds['min'].as_py())} AND {int(bounds['max'].as_py())}"


@contextmanager
def _keys(con: duckdb.DuckDBPyConnection, table: str, marks: pa.Table,
          view: str | None = None) -> Iterator[tuple[str, list]]:
    """The page's marks (product, granularity, start_us) as a relation ``k`` to join: ``view`` when given, a VALUES
    list with its parameters when they are few, else an arrow view registered for the statement."""
    if view is not None:
        yield f"{view} AS k", []
        return
    if marks.num_rows <= FEW:
        values, params = values_of(marks, _KEY)
        yield f"(VALUES {values}) AS k(product, granularity, start_us)", params
        return
    view = f"_new_{table}"
    con.register(view, marks)
    try:
        yield f"{view} AS k", []
    finally:
        con.unregister(view)


def write_marks(con: duckdb.DuckDBPyConnection, tables: list[str], new: pa.Table, known: bool | None = None) -> None:
    """The page's candle closes into each of ``tables`` (the same rows); ``known``: whether any of them already has
    a row (None: asked of the first table)."""
    with page_view(con, new) as view:
        if known is None:
            known = marks_known(con, tables[0], new, view)
        for table in tables:
            save_marks(con, table, new, known, view)


Frontier = dict[tuple[str, str], int]
"""The greatest candle start (epoch microseconds) a marks table holds, per (product, granularity)."""


def frontier(con: duckdb.DuckDBPyConnection, table: str) -> Frontier:
    """``table``'s frontier, read from it (one statement over the table)."""
    return {(p, g): s for p, g, s in con.execute(
        f"SELECT product, granularity, max(start_us) FROM {table} GROUP BY product, granularity").fetchall()}


def beyond(before: Frontier | None, new: pa.Table) -> tuple[bool | None, Frontier | None]:
    """Whether a candle of ``new`` may already have a row in a marks table whose frontier is ``before`` (False:
    every candle of ``new`` starts after the greatest start the table holds for its product and granularity, so
    none has; None: maybe, ask the table), and the frontier once ``new`` is written. A rebuild's pages add candles
    after the ones before them, so ``write_marks`` is spared the statement that asks; ``before`` None: unknown."""
    if before is None:
        return None, None
    after, known = dict(before), False
    if new.num_rows:
        spans = new.group_by(["product", "granularity"]).aggregate([("start_us", "min"), ("start_us", "max")])
        for p, g, low, high in zip(*(spans.column(c).to_pylist()
                                     for c in ("product", "granularity", "start_us_min", "start_us_max"))):
            held = after.get((p, g))
            if held is not None:
                if low <= held:
                    known = None
                high = max(high, held)
            after[(p, g)] = high
    return known, after
