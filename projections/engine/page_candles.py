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

from projections.engine.base import MONEY, shared

__all__ = ["CANDLE_TYPES", "candles_view", "page_candles"]

CANDLE_TYPES = ("CandleClosed", "CandleCorrected")

# close as the recorded text (the ledger keeps it so; the candles table casts it, as json_transform would)
_FIELDS = (f'{{"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ", "product": "VARCHAR", '
           f'"granularity": "VARCHAR", "start": "TIMESTAMPTZ", "open": "{MONEY}", "high": "{MONEY}", '
           f'"low": "{MONEY}", "close": "VARCHAR", "volume": "{MONEY}"}}')


def page_candles(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
    """The candles of ``batch_events`` after ``after`` (in no order: ``nid`` orders them): nid, type, stream and
    run (UUID text), at_us (occurred_at, epoch microseconds), product, granularity, start (and start_us), open,
    high, low, volume (DECIMAL(38, 18)) and close (the recorded text)."""
    return shared("page-candles", after, lambda: con.sql(
        f"""SELECT notification_id AS nid, event_type AS type, CAST(j.originator_id AS VARCHAR) AS stream,
                   CAST(j.run_id AS VARCHAR) AS run, epoch_us(j.occurred_at) AS at_us, j.product AS product,
                   j.granularity AS granularity, j.start AS start, epoch_us(j.start) AS start_us, j.open AS open,
                   j.high AS high, j.low AS low, j.close AS close, j.volume AS volume
            FROM (SELECT notification_id, event_type, json_transform(payload, '{_FIELDS}') AS j FROM batch_events
                  WHERE notification_id > {int(after)} AND event_type IN ('CandleClosed', 'CandleCorrected'))"""
    ).to_arrow_table())


@contextmanager
def candles_view(con: duckdb.DuckDBPyConnection, after: int) -> Iterator[str]:
    """``page_candles(con, after)`` registered on ``con`` as the view ``page_candles`` meanwhile."""
    con.register("page_candles", page_candles(con, after))
    try:
        yield "page_candles"
    finally:
        con.unregister("page_candles")
