"""A page's candles parsed once for every projection that reads them.

The candles projection (projections/tables/market.py) and the money ledger's walk and marks
(projections/ledger/page.py) all read the ``CandleClosed``/``CandleCorrected`` payloads of a page, most of
a rebuild's events: ``page_candles`` parses them once per page and position (``shared``; the projector
computes it while the page is read ahead, for the money ledger) into an arrow table that each reads as the
view ``page_candles`` (``candles_view``), instead of a JSON parse of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from projections.engine.base import MONEY, PAGE, shared

__all__ = ["CANDLE_TYPES", "SHARED_FROM", "candles_view", "page_candles", "shares_candles"]

CANDLE_TYPES = ("CandleClosed", "CandleCorrected")

# close as the recorded text (the ledger keeps it so; the candles table casts it, as json_transform would)
_FIELDS = (f'{{"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ", "product": "VARCHAR", '
           f'"granularity": "VARCHAR", "start": "TIMESTAMPTZ", "open": "{MONEY}", "high": "{MONEY}", '
           f'"low": "{MONEY}", "close": "VARCHAR", "volume": "{MONEY}"}}')


SHARED_FROM = 1000
"""Pages of more events than this share one parse of their candles. A smaller page (a follower's) is parsed by
each statement itself: making and registering the arrow table costs more (~4 ms) than parsing a few candles
twice, and the money ledger reads such a page in Python anyway (projections/ledger/page_rows.py)."""


def shares_candles() -> bool:
    """Whether the page being applied in this thread shares one parse of its candles (``SHARED_FROM``)."""
    page = getattr(PAGE, "table", None)
    return page is not None and page.num_rows > SHARED_FROM


def _select(after: int) -> str:
    return f"""SELECT notification_id AS nid, event_type AS type, CAST(j.originator_id AS VARCHAR) AS stream,
               CAST(j.run_id AS VARCHAR) AS run, epoch_us(j.occurred_at) AS at_us, j.product AS product,
               j.granularity AS granularity, j.start AS start, epoch_us(j.start) AS start_us, j.open AS open,
               j.high AS high, j.low AS low, j.close AS close, j.volume AS volume
        FROM (SELECT notification_id, event_type, json_transform(payload, '{_FIELDS}') AS j FROM batch_events
              WHERE notification_id > {int(after)} AND event_type IN ('CandleClosed', 'CandleCorrected'))"""


def page_candles(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
    """The candles of ``batch_events`` after ``after`` (in no order: ``nid`` orders them): nid, type, stream and
    run (UUID text), at_us (occurred_at, epoch microseconds), product, granularity, start (and start_us), open,
    high, low, volume (DECIMAL(38, 18)) and close (the recorded text)."""
    return shared("page-candles", after, lambda: con.sql(_select(after)).to_arrow_table())


@contextmanager
def candles_view(con: duckdb.DuckDBPyConnection, after: int) -> Iterator[str]:
    """What a statement reads the page's candles from: ``page_candles(con, after)`` registered on ``con`` as the
    view ``page_candles`` meanwhile, or for a page of at most ``SHARED_FROM`` events (or outside the projector)
    the same columns parsed by the statement itself."""
    if not shares_candles():
        yield f"({_select(after)})"
        return
    con.register("page_candles", page_candles(con, after))
    try:
        yield "page_candles"
    finally:
        con.unregister("page_candles")
