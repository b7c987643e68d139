"""What the money ledger reads of a page of the log: the rows of its walk and the page's candle closes.

Both are computed in DuckDB from the page's JSON payloads (``batch_events``), kept by ``shared`` so the
money projections parse a page once.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import partial

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.order_states import TERMINAL_EVENTS
from projections.engine.base import PAGE, shared, type_counts
from projections.engine.page_candles import CANDLE_TYPES, candles_view, page_candles, shares_candles
from projections.ledger.book import Event
from projections.ledger.page_rows import marks_rows, parse, walk_rows

DECISIONS = ("DecisionMade", "DecisionFailed")
FILLS = ("OrderPartiallyFilled", "OrderFilled", "FillDiscovered")  # a discovered fill books like any fill
TERMINAL = TERMINAL_EVENTS  # the events after which an order is done (domain/order_states.py)
LEDGER_TYPES = (
    "RunStarted", "FundsDeposited", "FundsWithdrawn", "OrderPlaced", *FILLS, "OrderCancelled", "OrderRejected",
    "OrderExpired", "CandleClosed", "CandleCorrected", "DecisionMade", "DecisionFailed", "RiskAssessed",
    "ConfigChanged", "TradingHalted", "TradingResumed",
)
# What the walk reads: every money projection's types (risk_usage adds two), so the three share one parse of a page.
WALK_TYPES = LEDGER_TYPES

_FIELDS = (
    '{"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ", "product": "VARCHAR", '
    '"granularity": "VARCHAR", "start": "TIMESTAMPTZ", "close": "VARCHAR", '
    '"candle_start": "TIMESTAMPTZ", "side": "VARCHAR", "quantity": "VARCHAR", "price": "VARCHAR", '
    '"fee": "VARCHAR", "fill_id": "VARCHAR", "amount": "VARCHAR", "path": "VARCHAR", "new_value": "VARCHAR", '
    '"rule": "VARCHAR", "numbers": {"limit_pct": "VARCHAR"}}'
)

_WALK_SET = frozenset(WALK_TYPES)


def _parsed(after: int) -> list[tuple] | None:
    """The projector's page, when it is small, read in Python (projections/ledger/page_rows.py), once per page."""
    page = getattr(PAGE, "table", None)
    if page is None:
        return None
    return shared("ledger-parsed", after, lambda: parse(page, after, _WALK_SET))


def walk_events(con: duckdb.DuckDBPyConnection, after: int) -> list[Event]:
    parsed = _parsed(after)
    if parsed is not None:
        return [Event(*row) for row in walk_rows(parsed)]
    if shares_candles() and _candles_only(con, after):
        return []  # no step, nothing a decision names: the page's closes are page_marks'
    others = ", ".join(f"'{t}'" for t in WALK_TYPES if t not in CANDLE_TYPES)
    # e: the page's events of the walk's types (its candles as every projection reads them: page_candles);
    # the statement gives the events the walk needs, in log order (a run's candles, candles a decision of
    # the page names, everything else of the types); ``folded`` then puts a decision right after the
    # CandleClosed of its run, product and candle on that candle's row (dnid, dat, dtype).
    with candles_view(con, after) as candles:
        w = con.sql(
            f"""WITH e AS MATERIALIZED (
                SELECT nid, type, CAST(j.originator_id AS VARCHAR) AS stream, CAST(j.run_id AS VARCHAR) AS run,
                       epoch_us(j.occurred_at) AS at_us, j.product AS product, j.granularity AS granularity,
                       epoch_us(j.start) AS start, j.close AS close, epoch_us(j.candle_start) AS candle_start,
                       j.side AS side, j.quantity AS quantity, j.price AS price, j.fee AS fee, j.fill_id AS fill_id,
                       j.amount AS amount, j.path AS path, j.new_value AS new_value, j.rule AS rule,
                       j.numbers.limit_pct AS limit_pct
                FROM (SELECT notification_id AS nid, event_type AS type, json_transform(payload, '{_FIELDS}') AS j
                      FROM batch_events WHERE notification_id > $1 AND event_type IN ({others}))
                UNION ALL
                SELECT nid, type, stream, run, at_us, product, granularity, start_us, close, NULL, NULL, NULL, NULL,
                       NULL, NULL, NULL, NULL, NULL, NULL, NULL
                FROM {candles}),
            named AS (SELECT DISTINCT product, candle_start AS s FROM e
                      WHERE type IN ('DecisionMade', 'DecisionFailed'))
            SELECT e.* FROM e LEFT JOIN named ON e.type IN ('CandleClosed', 'CandleCorrected')
                 AND named.product = e.product AND named.s = e.start
            WHERE e.type NOT IN ('CandleClosed', 'CandleCorrected')
                  OR (e.type = 'CandleClosed' AND e.run IS NOT NULL) OR named.s IS NOT NULL
            ORDER BY nid""",
            params=[after],
        ).to_arrow_table()
    return folded(w)


def folded(w: pa.Table) -> list[Event]:
    """The walk's rows of ``w`` (its events in log order, the 20 columns of ``Event`` before dnid): a decision right
    after the CandleClosed of its run, product and candle (``candle_start`` = the candle's ``start``) rides on that
    candle's row as (dnid, dat, dtype) instead of a row of its own. Each row is compared with the next by arrow over
    whole columns (the statement's window of eleven lead/lag did it for ~0.05 s of a page of 50,000 events; this
    takes a few milliseconds); a null never matches."""
    count = w.num_rows
    if count == 0:
        return []
    if w.num_columns != len(Event._fields) - 3:
        raise AssertionError(f"the walk's query gives {w.num_columns} columns, Event has "
                             f"{len(Event._fields) - 3} before dnid")
    columns = [_plain(column) for column in w.columns]
    nid, kind, run, at, product, start, candle_start = (columns[i] for i in (0, 1, 3, 4, 5, 7, 9))
    carries = np.zeros(count, dtype=bool)  # row i carries row i + 1
    if count > 1:
        before, after = slice(0, count - 1), slice(1, count)
        match = pc.and_(pc.and_(pc.equal(kind[before], "CandleClosed"), pc.is_in(kind[after], _DECISION_SET)),
                        pc.and_(pc.and_(pc.equal(run[after], run[before]), pc.equal(product[after], product[before])),
                                pc.equal(candle_start[after], start[before])))
        carries[:-1] = pc.fill_null(match, False).to_numpy(zero_copy_only=False)
    kept = np.ones(count, dtype=bool)
    kept[1:] = ~carries[:-1]
    if carries.any():
        ride, keep = pa.array(carries), pa.array(kept)
        nothing = [pa.nulls(1, c.type) for c in (nid, at, kind)]
        carried = [pc.if_else(ride, pa.concat_arrays([c[1:], none]), pa.scalar(None, c.type))
                   for c, none in zip((nid, at, kind), nothing)]
        columns = [c.filter(keep) for c in (*columns, *carried)]
    else:
        columns += [pa.nulls(count, pa.int64()), pa.nulls(count, pa.int64()), pa.nulls(count, pa.string())]
    return list(map(partial(tuple.__new__, Event), zip(*(c.to_pylist() for c in columns))))  # (no __new__ per row)


_DECISION_SET = pa.array(DECISIONS, pa.string())


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """One array of ``column``'s values (strings decoded from a dictionary)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _candles_only(con: duckdb.DuckDBPyConnection, after: int) -> bool:
    """Whether the page holds, of the walk's types, only candles that are no run's (e.g. imported candles)."""
    counts = type_counts(con, after)
    if any(counts.get(t) for t in WALK_TYPES if t not in CANDLE_TYPES):
        return False
    runs = page_candles(con, after).column("run")
    return runs.null_count == len(runs)


def page_marks(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
    """The page's candle closes after ``after`` (product, granularity, start_us, close), the last one of a candle
    winning."""
    parsed = _parsed(after)
    if parsed is not None:
        return shared("ledger-marks", after, lambda: marks_rows(parsed))
    return shared("ledger-marks", after, lambda: _closes(con, after))


def _closes(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
    with candles_view(con, after) as candles:
        return con.sql(f"""SELECT product, granularity, start_us, arg_max(close, nid) AS close FROM {candles}
            GROUP BY product, granularity, start_us""").to_arrow_table()


# --- helpers ----------------------------------------------------------------------------------------

_TIMES: dict[int, datetime] = {}


def _time(micros: int) -> datetime:
    """The UTC datetime of epoch microseconds (the walk's times)."""
    return datetime.fromtimestamp(micros / 1_000_000, timezone.utc) if micros % 1_000_000 else _whole(micros)


def _whole(micros: int) -> datetime:
    at = _TIMES.get(micros)
    if at is None:
        if len(_TIMES) > 100_000:
            _TIMES.clear()
        at = _TIMES[micros] = datetime.fromtimestamp(micros // 1_000_000, timezone.utc)
    return at


def _number(text: str | None) -> str | None:
    """A limit as an exact decimal string, or None when unset or not a finite number >= 0."""
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return str(value) if value.is_finite() and value >= 0 else None
