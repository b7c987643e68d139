"""Risk usage per run and UTC day: the daily loss used against its limit, exposure, open positions.

``risk_usage``: one row per run and UTC day, as at the day's last event of the
run (the money ledger: projections/ledger/walk.py), with the run book's
definitions (domain/run_book.py):

- ``day_start_equity``; ``equity`` (the day's end equity so far, marked at the last close);
- ``daily_loss_pct`` = (day_start_equity - equity) / day_start_equity * 100 (the
  ``max_daily_loss`` rule's figure; negative on a gain, 0 when the start equity
  is not > 0); ``worst_daily_loss_pct``: its highest value at the day's equity
  points (the run's decisions) and its end;
- ``max_daily_loss_pct``, the limit, and ``limit_source``, the rule that chose
  it: ``config`` when a ``ConfigChanged`` of ``risk.max_daily_loss_pct`` (to a
  number) came before in the log (the latest wins; a change to none falls
  back); else ``risk_assessed``: the ``limit_pct`` of the run's latest
  ``RiskAssessed`` whose rule is ``max_daily_loss``; else ``default``: 3.
- ``pct_of_limit_used`` = worst_daily_loss_pct / limit * 100 (0 when the limit is 0):
  how much of the day's limit was used at its worst, the figure the risk score weighs;
- ``max_daily_loss_breached``: the loss reached the limit at an equity point
  or at the day's end ((start - equity) * 100 >= limit * start, risk's own
  comparison), or risk refused an entry with rule ``max_daily_loss`` that day;
- ``exposure`` = sum of |quantity * mark| over open positions; ``open_positions``;
  ``risk_score``/``risk_level``: the run book's risk score of the day.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from projections.engine.base import MONEY
from projections.ledger.book import Book, arrow
from projections.ledger.day_rows import DayRows


class RiskUsageProjection(DayRows):
    """Table ``risk_usage``."""

    name = "risk_usage"
    outputs = ("risk_usage",)

    def create_outputs(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS risk_usage (
                run_id UUID NOT NULL, day DATE NOT NULL, day_start_equity {MONEY} NOT NULL,
                equity {MONEY} NOT NULL, daily_loss_pct {MONEY} NOT NULL, worst_daily_loss_pct {MONEY} NOT NULL,
                max_daily_loss_pct {MONEY} NOT NULL, limit_source VARCHAR NOT NULL, pct_of_limit_used {MONEY},
                max_daily_loss_breached BOOLEAN NOT NULL, exposure {MONEY} NOT NULL,
                open_positions INTEGER NOT NULL, risk_score INTEGER NOT NULL, risk_level VARCHAR NOT NULL,
                candle_start TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL, last_notification_id BIGINT NOT NULL)"""
        )

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        super().begin(con)
        self.rows: dict[tuple[str, object], tuple] = {}

    def day_row(self, book: Book, f, pending: tuple[int, int]) -> None:
        """The day's row as at its last update (the hooks are DayRows')."""
        step = book.candle
        self.rows[(book.run, f.day)] = (
            book.run, f.day, f.day_start_equity, f.end_equity, f.daily_loss_pct, f.worst_daily_loss_pct,
            f.daily_loss_limit_pct, self.limit_source(book), f.pct_of_limit_used, f.daily_loss_breached, f.exposure,
            f.open_positions, f.risk_score, f.risk_level, None if step is None else step.start, *pending,
        )

    def output_rows(self) -> list[tuple[str, list[str], pa.Table]]:
        names = ("run_id", "day", "day_start_equity", "equity", "daily_loss_pct", "worst_daily_loss_pct",
                 "max_daily_loss_pct", "limit_source", "pct_of_limit_used", "max_daily_loss_breached", "exposure",
                 "open_positions", "risk_score", "risk_level", "candle_start", "updated_at", "last_notification_id")
        rows = [self.rows[k] for k in sorted(self.rows)]
        return [("risk_usage", ["run_id", "day"],
                 arrow(names, rows, {"day": "date", "candle_start": "time", "updated_at": "time"}))]


PROJECTIONS = (RiskUsageProjection(),)
