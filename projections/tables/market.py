"""Candles as the market stream recorded them, corrections applied.

``candles``: one row per (product, granularity, start) from ``CandleClosed``;
a ``CandleCorrected`` overwrites its OHLCV and counts the correction.
"""

from __future__ import annotations

import duckdb

from projections.engine.base import MONEY, type_counts
from projections.engine.page_candles import candles_view


class CandlesProjection:
    """Table ``candles``: OHLCV per product, granularity and start, with a corrections count."""

    name = "candles"
    tables = ("candles",)
    event_types = ("CandleClosed", "CandleCorrected")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS candles (
                product VARCHAR NOT NULL,
                granularity VARCHAR NOT NULL,
                start TIMESTAMPTZ NOT NULL,
                open {MONEY} NOT NULL,
                high {MONEY} NOT NULL,
                low {MONEY} NOT NULL,
                close {MONEY} NOT NULL,
                volume {MONEY} NOT NULL,
                corrections INTEGER NOT NULL,
                notification_id BIGINT NOT NULL
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS candles")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        counts = type_counts(con, after)
        if not counts.get("CandleClosed") and not counts.get("CandleCorrected"):
            return
        # The page's candles as every projection reads them: parsed once for a large page, by this statement for a
        # follower's small one (candles_view).
        with candles_view(con, after) as page:
            self._write(con, counts, page)

    @staticmethod
    def _write(con: duckdb.DuckDBPyConnection, counts: dict[str, int], rows: str) -> None:
        """Insert the page's closed candles and apply its corrections, from ``rows``: a relation of the page's
        candle events after the position (type, nid, product, granularity, start, open, high, low, close, volume)."""
        if counts.get("CandleClosed"):
            con.execute(
                f"""INSERT INTO candles
                SELECT product, granularity, start, open, high, low, CAST(close AS {MONEY}), volume, 0, nid
                FROM {rows} WHERE type = 'CandleClosed'"""
            )
        if not counts.get("CandleCorrected"):
            return
        # The last correction of a candle in the page wins; every one is counted.
        con.execute(
            f"""UPDATE candles SET open = k.open, high = k.high, low = k.low, close = k.close, volume = k.volume,
                   corrections = candles.corrections + k.n
            FROM (
                SELECT product, granularity, start, arg_max(open, nid) AS open, arg_max(high, nid) AS high,
                       arg_max(low, nid) AS low, CAST(arg_max(close, nid) AS {MONEY}) AS close,
                       arg_max(volume, nid) AS volume, count(*) AS n
                FROM {rows} WHERE type = 'CandleCorrected'
                GROUP BY ALL
            ) AS k
            WHERE candles.product = k.product AND candles.granularity = k.granularity AND candles.start = k.start"""
        )


PROJECTIONS = (CandlesProjection(),)
