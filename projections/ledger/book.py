"""The money ledger's book of one run (a ``domain.run_book.RunBook`` that a projection keeps between pages),
the rows the walk reads, and the helpers that write DuckDB rows exactly."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, localcontext
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.accounting import Portfolio, Position
from domain.run_book import RunBook

ZERO = Decimal(0)
_SCALE = Decimal(1).scaleb(-18)
_WIDE = Context(prec=60)  # enough digits to round any DECIMAL(38, 18) value to 18 decimals exactly
DAY_US = 86_400_000_000
MONEY_TYPE = pa.decimal128(38, 18)
TIME_TYPE = pa.timestamp("us", tz="UTC")
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
GLOBAL = "*"  # the state row of facts that belong to no run (e.g. configuration)

# One batch row as the ledger reads it: Decimals still as exact strings, times in epoch
# microseconds (at = occurred_at; start = a candle's start; candle_start = a decision's candle).
# A run's CandleClosed row also carries the decision that follows it directly in the walk when that
# decision names the same run, product and candle (dnid, dat, dtype; None otherwise): see Ledger.apply.
Event = namedtuple(
    "Event", "nid type stream run at product granularity start close candle_start side quantity price fee "
    "fill_id amount path new_value rule limit_pct dnid dat dtype",
    defaults=(None, None, None),
)


# The decision that rides on its run's candle, as the on_decision hooks read it.
Decided = namedtuple("Decided", "nid type run at product candle_start")



@dataclass(slots=True)
class Candle:
    """The run's current candle ("step"): its product, start, close time (at) and close."""

    product: str
    start: int
    at: int
    close: Decimal
    nid: int


@dataclass
class Book(RunBook):
    """One run's books (the domain's ``RunBook``) and where the walk is in time.

    ``x``: a projection's own state (JSON-able; Decimals saved as str); ``day_end`` (not saved): epoch
    microseconds where the current day ends, once known; ``assessed_limit``: the daily-loss limit named by
    the run's latest ``max_daily_loss`` refusal; ``config_limit`` (the global book only): the limit set by
    ``ConfigChanged`` of ``risk.max_daily_loss_pct``.
    """

    run: str = ""
    product: str | None = None
    granularity: str | None = None
    candle: Candle | None = None
    x: dict[str, Any] = field(default_factory=dict)
    assessed_limit: str | None = None
    config_limit: str | None = None
    day_end: int | None = None
    keep_closed_days: bool = False

    # --- persistence ------------------------------------------------------------------

    def dump(self, keys: tuple[str, ...] | None = None) -> str:
        """The book as JSON; ``keys``: only those entries of ``x`` (None: all)."""
        p = self.portfolio
        positions = {
            name: [str(v) for v in (q.quantity, q.entry_cost, q.realized_pnl, q.fees, q._trip_pnl, q._trip_fees,
                                    q._trip_quantity)]
            for name, q in p.positions.items()
        }
        c = self.candle
        return json.dumps({
            "product": self.product, "granularity": self.granularity,
            "portfolio": [str(v) for v in (p.cash, p.deposited, p.withdrawn, p.realized_pnl, p.fees_paid)]
            + [p.trades, p.wins, p.consecutive_losses],
            "positions": positions, "marks": {k: str(v) for k, v in self.marks.items()},
            "step": None if c is None else [c.product, c.start, c.at, str(c.close), c.nid],
            "book": self.state(), "assessed_limit": self.assessed_limit, "config_limit": self.config_limit,
            "x": {k: str(v) if isinstance(v, Decimal) else v for k, v in self.x.items() if keys is None or k in keys},
        }, sort_keys=True)

    @classmethod
    def load(cls, run: str, text: str) -> Book:
        s = json.loads(text)
        portfolio = Portfolio()
        money_, counts = s["portfolio"][:5], s["portfolio"][5:]
        portfolio.cash, portfolio.deposited, portfolio.withdrawn, portfolio.realized_pnl, portfolio.fees_paid = map(
            Decimal, money_)
        portfolio.trades, portfolio.wins, portfolio.consecutive_losses = counts
        for name, values in s["positions"].items():
            q = portfolio.positions[name] = Position(name)
            (q.quantity, q.entry_cost, q.realized_pnl, q.fees, q._trip_pnl, q._trip_fees,
             q._trip_quantity) = map(Decimal, values)
        c = s["step"]
        book = cls(portfolio=portfolio, marks={k: Decimal(v) for k, v in s["marks"].items()}, run=run,
                   product=s["product"], granularity=s["granularity"],
                   candle=None if c is None else Candle(c[0], c[1], c[2], Decimal(c[3]), c[4]), x=s["x"],
                   assessed_limit=s.get("assessed_limit"), config_limit=s.get("config_limit"))
        if s.get("book") is not None:
            book.restore_state(s["book"])
            if book.current is not None:
                book.day_end = day_end(book.current.day)
        return book


# --- helpers shared by the money projections ------------------------------------------------


def money(value: Decimal | None) -> Decimal | None:
    """A Decimal as DECIMAL(38, 18) holds it: rounded half-even only past 18 decimals."""
    if value is None or value.as_tuple().exponent >= -18:
        return value
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(_SCALE)


def utc_day(micros: int) -> date:
    return datetime.fromtimestamp(micros / 1_000_000, timezone.utc).date()


_DAYS: dict[int, str] = {}
_EPOCH = date(1970, 1, 1).toordinal()


def day_end(day: date) -> int:
    """Epoch microseconds where the UTC day ``day`` ends."""
    return (day.toordinal() - _EPOCH + 1) * DAY_US


def iso_day(micros: int) -> str:
    """``utc_day(micros).isoformat()``, remembered per day."""
    number = micros // DAY_US
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = utc_day(number * DAY_US).isoformat()
    return day


FEW = 16
"""Rows written as one statement with parameters (no arrow view to register): a follower's pages write a few rows
to many tables; registering a view costs about as much as a statement of 16 rows (measured: 1 row 0.4 vs
1.1 ms, 60 rows 4.2 vs 1.4 ms)."""


def _typed(rows: pa.Table, names: list[str]) -> tuple[list[str], list[list]]:
    """A parameter expression per column ``names`` of ``rows``, with the type an arrow view would give it (times
    from epoch microseconds, dates; everything else bound as its Python value: Decimals arrive as exact text,
    cast by the statement as from the view), and each column's values."""
    exprs, columns = [], []
    for name in names:
        column = rows.column(name)
        if pa.types.is_timestamp(column.type):
            exprs.append("make_timestamptz(CAST(? AS BIGINT))")  # (epoch microseconds: whatever the TimeZone)
            columns.append(column.cast(pa.int64()).to_pylist())
        elif pa.types.is_date(column.type):
            exprs.append("CAST(? AS DATE)")
            columns.append(column.to_pylist())
        else:
            exprs.append("CAST(? AS VARCHAR)" if pa.types.is_string(column.type) else "?")
            columns.append(column.to_pylist())
    return exprs, columns


def values_of(rows: pa.Table, names: list[str]) -> tuple[str, list]:
    """``rows``' columns ``names`` as a VALUES list and its parameters (see ``_typed``)."""
    exprs, columns = _typed(rows, names)
    row = f"({', '.join(exprs)})"
    return ", ".join([row] * rows.num_rows), [v for values in zip(*columns) for v in values]


MATCHED = 16
"""Up to this many rows, ``matching`` is a condition on the table (a join with the rows costs more)."""


def matching(rows: pa.Table, keys: list[str], alias: str = "t") -> tuple[str, list]:
    """A WHERE condition true for the rows of ``alias`` whose ``keys`` equal (NULLs equal) those of one of
    ``rows``, and its parameters."""
    exprs, columns = _typed(rows, keys)
    one = " AND ".join(f"{alias}.{k} IS NOT DISTINCT FROM {e}" for k, e in zip(keys, exprs))
    condition = " OR ".join([f"({one})"] * rows.num_rows)
    for key, values in zip(keys, columns):  # literal bounds of a time key: DuckDB skips the row groups outside them
        if pa.types.is_timestamp(rows.column(key).type) and None not in values:
            low, high = (_EPOCH_UTC + timedelta(microseconds=v) for v in (min(values), max(values)))
            condition = f"{alias}.{key} BETWEEN TIMESTAMPTZ '{low.isoformat()}' AND TIMESTAMPTZ '{high.isoformat()}' " \
                        f"AND ({condition})"
    return condition, [v for values in zip(*columns) for v in values]


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Insert ``rows`` (by column name)."""
    if rows.num_rows == 0:
        return
    if rows.num_rows <= FEW:  # each parameter bound to its column's type (half the cost of casts in a SELECT)
        names = rows.column_names
        exprs, columns = _typed(rows, names)
        row = ", ".join("make_timestamptz(?)" if e.startswith("make_timestamptz") else "?" for e in exprs)
        con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([f'({row})'] * rows.num_rows)}",
                    [v for values in zip(*columns) for v in values])
        return
    view = f"_new_{table}"
    con.register(view, rows)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
    finally:
        con.unregister(view)


def replace(con: duckdb.DuckDBPyConnection, table: str, keys: list[str], rows: pa.Table) -> None:
    """Upsert: delete the rows with the same key columns, insert ``rows`` (by column name)."""
    if rows.num_rows == 0:
        return
    if rows.num_rows <= FEW:
        if keys and rows.num_rows <= MATCHED:
            condition, params = matching(rows, keys)
            con.execute(f"DELETE FROM {table} AS t WHERE {condition}", params)
        elif keys:
            values, params = values_of(rows, keys)
            match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in keys)
            con.execute(f"DELETE FROM {table} AS t USING (VALUES {values}) AS n({', '.join(keys)}) WHERE {match}",
                        params)
        insert(con, table, rows)
        return
    view = f"_new_{table}"
    con.register(view, rows)
    try:
        if keys:
            match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in keys)
            con.execute(f"DELETE FROM {table} AS t USING {view} AS n WHERE {match}")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
    finally:
        con.unregister(view)


def exact_text(value: Decimal | None) -> str | None:
    """A Decimal as text DuckDB casts to DECIMAL(38, 18) exactly: ``money(value)``, printed."""
    if value is None:
        return None
    text = str(value)
    point = text.find(".")
    if "E" in text or (point >= 0 and len(text) - point > 19):
        return str(value.quantize(_SCALE, context=_WIDE))
    return text


_ARROW_TYPE = {"bool": pa.bool_(), "int": pa.int64(), "str": pa.string()}

_LONG = r"E|\.[0-9]{19}"  # the printed Decimals that need exact_text's rounding (or are exponent-printed)


def money_texts(values: Sequence[Decimal | None]) -> pa.Array:
    """``exact_text`` of each value as an arrow string column (printing all, rounding only those that need it).

    A column that repeats the same objects (a quiet stretch's cash, equity, peak and drawdown on every row) is
    printed once per run of the same object in a row (found by comparing the objects' ids in numpy; the texts
    then repeated by arrow)."""
    count = len(values)
    ids = np.fromiter(map(id, values), np.int64, count)  # (the values are alive meanwhile: no id is reused)
    if count >= _RUNS_FROM:
        firsts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        if (len(firsts) + 1) * 2 <= count:
            firsts = np.concatenate(([0], firsts))
            texts = pa.array([exact_text(values[i]) for i in firsts.tolist()], pa.string())
            lengths = np.diff(np.append(firsts, count))
            return texts.take(pa.array(np.repeat(np.arange(len(firsts), dtype=np.int32), lengths)))
    texts = [None if v is None else str(v) for v in values] if (ids == id(None)).any() else list(map(str, values))
    column = pa.array(texts, pa.string())
    long = pc.match_substring_regex(column, _LONG)
    if pc.any(long).as_py():
        for i in pc.indices_nonzero(long).to_pylist():
            texts[i] = exact_text(values[i])
        column = pa.array(texts, pa.string())
    return column


_RUNS_FROM = 32
"""Columns of at least this many values are looked at for runs of the same object (``money_texts``)."""

_PLAIN = frozenset((Decimal, bool, int, str, type(None)))


def _kind(values: tuple) -> str:
    """How ``arrow`` writes a column: 'money' when any value is a Decimal, else 'bool', 'int' or 'str' (the first
    type any value is an instance of). A column of plain values is typed from the set of their types (one pass
    in C), others value by value."""
    types = set(map(type, values))
    if types <= _PLAIN:
        return "money" if Decimal in types else "bool" if bool in types else "int" if int in types else "str"
    for kind, cls in (("money", Decimal), ("bool", bool), ("int", int)):
        if any(isinstance(v, cls) for v in values):
            return kind
    return "str"


def arrow(names: tuple[str, ...], rows: list[tuple], kinds: dict[str, str] | None = None) -> pa.Table:
    """Rows to a pyarrow table: ``time`` columns from epoch microseconds; Decimals as exact text
    (``exact_text``), which the INSERT into a DECIMAL(38, 18) column casts (faster than arrow decimals)."""
    kinds = kinds or {}
    columns = list(zip(*rows)) if rows else [()] * len(names)
    arrays = []
    for name, values in zip(names, columns):
        kind = kinds.get(name) or _kind(values)
        if kind == "time":
            arrays.append(pa.array(values, pa.int64()).cast(TIME_TYPE))
        elif kind == "date":
            arrays.append(pa.array(values, pa.date32()))
        elif kind == "money":
            arrays.append(money_texts(values))
        else:
            arrays.append(pa.array(values, _ARROW_TYPE[kind]))
    return pa.Table.from_arrays(arrays, names=list(names))


