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

__all__ = ["marks_known", "save_marks"]

_KEY = ["product", "granularity", "start_us"]


def save_marks(con: duckdb.DuckDBPyConnection, table: str, new: pa.Table, known: bool | None) -> None:
    """Write the page's closes ``new`` into ``table``, first deleting their earlier rows unless ``known`` is False
    (no candle of the page has a row yet)."""
    if new.num_rows == 0:
        return
    if known is not False and new.num_rows <= MATCHED:
        condition, params = matching(new, _KEY)
        con.execute(f"DELETE FROM {table} AS t WHERE {_bounds(new)} AND ({condition})", params)
    elif known is not False:
        with _keys(con, table, new) as (keys, params):
            con.execute(f"""DELETE FROM {table} AS t USING {keys}
                WHERE {_bounds(new)} AND t.product = k.product AND t.granularity = k.granularity
                AND t.start_us = k.start_us""", params)
    insert(con, table, new)


def marks_known(con: duckdb.DuckDBPyConnection, table: str, new: pa.Table) -> bool:
    """Whether any candle of ``new`` already has a row in ``table``."""
    if new.num_rows == 0:
        return False
    if new.num_rows <= MATCHED:
        condition, params = matching(new, _KEY)
        return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table} AS t WHERE {_bounds(new)} AND ({condition}))",
                           params).fetchall()[0][0]
    with _keys(con, table, new) as (keys, params):
        return con.execute(f"""SELECT EXISTS (SELECT 1 FROM {table} AS t SEMI JOIN {keys}
            ON t.product = k.product AND t.granularity = k.granularity AND t.start_us = k.start_us
            WHERE {_bounds(new)})""", params).fetchall()[0][0]


def _bounds(marks: pa.Table) -> str:
    """The page's candle starts as literal bounds of ``t.start_us``."""
    bounds = pc.min_max(marks.column("start_us"))
    return f"t.start_us BETWEEN {int(bounds['min'].as_py())} AND {int(bounds['max'].as_py())}"


@contextmanager
def _keys(con: duckdb.DuckDBPyConnection, table: str, marks: pa.Table) -> Iterator[tuple[str, list]]:
    """The page's marks (product, granularity, start_us) as a relation ``k`` to join: a VALUES list with its
    parameters when they are few, else an arrow view registered for the statement."""
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
