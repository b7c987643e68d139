"""Risk usage per run and UTC day: the daily loss used against its limit, exposure, open positions.

``risk_usage``: one row per run and UTC day, rewritten at each of the run's
candles, decisions and fills (the ledger of projections/ledger/positions.py):

- ``day_start_equity``: the equity at the decision on the day's first candle,
  as the trading loop takes it; ``equity``: now, marked at the last close.
- ``daily_loss_pct`` = (day_start_equity - equity) / day_start_equity * 100
  (domain/risk.py: realized and unrealized, negative on a gain, 0 when the
  start equity is not > 0); ``worst_daily_loss_pct``: its highest value that
  day (taken at each update).
- ``max_daily_loss_pct``, the limit, and ``limit_source``, the rule that chose it:
  ``config`` when a ``ConfigChanged`` of ``risk.max_daily_loss_pct`` (to a
  number) came before in the log (the latest wins; a change to none falls
  back); else ``risk_assessed``: the ``limit_pct`` of the run's latest
  ``RiskAssessed`` whose rule is ``max_daily_loss`` (only that rule's
  ``limit_pct`` is the daily-loss limit); else ``default``: 3.
- ``pct_of_limit_used`` = daily_loss_pct / limit * 100 (NULL when the limit is 0).
- ``max_daily_loss_breached``: the loss reached the limit at some update that
  day ((start - equity) * 100 >= limit * start, risk's own comparison), or
  risk refused an entry with rule ``max_daily_loss`` that day. It stays true
  for the rest of the day.
- ``exposure`` = sum of |quantity * mark| over open positions;
  ``open_positions``: how many are open.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

import duckdb

from domain.accounting import FillEffect
from projections.engine.base import MONEY
from projections.ledger.positions import ZERO, Book, Event, Ledger, arrow, replace

HUNDRED = Decimal(100)
DEFAULT_LIMIT = Decimal(3)
LIMIT_PATH = "risk.max_daily_loss_pct"


class RiskUsageProjection(Ledger):
    """Table ``risk_usage``."""

    name = "risk_usage"
    outputs = ("risk_usage",)
    extra_types = ("RiskAssessed", "ConfigChanged")
    x_keys = ("breached", "worst", "limit")

    def create_outputs(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS risk_usage (
                run_id UUID NOT NULL, day DATE NOT NULL, day_start_equity {MONEY} NOT NULL,
                equity {MONEY} NOT NULL, daily_loss_pct {MONEY} NOT NULL, worst_daily_loss_pct {MONEY} NOT NULL,
                max_daily_loss_pct {MONEY} NOT NULL, limit_source VARCHAR NOT NULL, pct_of_limit_used {MONEY},
                max_daily_loss_breached BOOLEAN NOT NULL, exposure {MONEY} NOT NULL,
                open_positions INTEGER NOT NULL, candle_start TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL,
                last_notification_id BIGINT NOT NULL)"""
        )

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rows: dict[tuple[str, str], tuple] = {}
        # run -> [lowest equity, at, nid] of the updates since the last flush (the same day, start equity and
        # limit): the loss is highest, and the limit first reached, at the lowest equity.
        self.pending: dict[str, list] = {}

    def thaw(self, book: Book) -> None:
        if book.x.get("worst") is not None:
            book.x["worst"] = Decimal(book.x["worst"])

    # --- hooks -------------------------------------------------------------------------------------

    def on_day(self, book: Book, event: Event) -> None:
        book.x["breached"] = False
        book.x["worst"] = None

    def on_step(self, book: Book, event: Event) -> None:
        self._update(book, event)

    def on_decision(self, book: Book, event: Event) -> None:
        self._update(book, event)

    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None:
        self._update(book, event)

    def on_cash(self, book: Book, event: Event) -> None:
        self._update(book, event)

    def on_other(self, book: Book | None, event: Event) -> None:
        if event.type == "ConfigChanged":
            if event.path == LIMIT_PATH:
                for run in sorted(self.pending):  # the updates so far were measured against the old limit
                    self.flush(self.books[run])
                self.glob.x["limit"] = _number(event.new_value)
            return
        if book is None or event.rule != "max_daily_loss":
            return
        limit = _number(event.limit_pct)
        if limit is not None:
            self.flush(book)
            book.x["limit"] = limit
        if book.day is not None:
            book.x["breached"] = True
            self._update(book, event)

    # --- the row ----------------------------------------------------------------------------------------

    def _limit(self, book: Book) -> tuple[Decimal, str]:
        if self.glob.x.get("limit") is not None:
            return Decimal(self.glob.x["limit"]), "config"
        if book.x.get("limit") is not None:
            return Decimal(book.x["limit"]), "risk_assessed"
        return DEFAULT_LIMIT, "default"

    def _update(self, book: Book, event: Event) -> None:
        if book.day is None or book.day_start_equity is None:
            return
        equity = book.equity()
        pending = self.pending.get(book.run)
        if pending is None:
            self.pending[book.run] = [equity, event.at, event.nid]
        else:
            if equity < pending[0]:
                pending[0] = equity
            pending[1], pending[2] = event.at, event.nid

    def flush(self, book: Book) -> None:
        """Fold the pending updates into the day's worst loss and breach, and write the day's row as at the last.

        The loss (start - equity) / start * 100 and risk's comparison (start - equity) * 100 >= limit * start
        only grow as the equity falls (Decimal rounding keeps the order), so over updates with one start
        equity and limit, the highest loss and any breach are those of the lowest equity.
        """
        pending = self.pending.pop(book.run, None)
        if pending is None:
            return
        low, at, nid = pending
        x = book.x
        start, equity = book.day_start_equity, book.equity()
        limit, source = self._limit(book)
        if start > 0 and (start - low) * HUNDRED >= limit * start:
            x["breached"] = True
        worst = x.get("worst")
        low_loss = (start - low) / start * HUNDRED if start > 0 else ZERO
        if worst is None or low_loss > worst:
            x["worst"] = worst = low_loss
        loss = (start - equity) / start * HUNDRED if start > 0 else ZERO
        step = book.step
        self.rows[(book.run, book.day)] = (
            book.run, date.fromisoformat(book.day), start, equity, loss, worst, limit, source,
            loss / limit * HUNDRED if limit else None, bool(x["breached"]), book.exposure(),
            len(book.open_positions()), None if step is None else step.start, at, nid,
        )

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        names = ("run_id", "day", "day_start_equity", "equity", "daily_loss_pct", "worst_daily_loss_pct",
                 "max_daily_loss_pct", "limit_source", "pct_of_limit_used", "max_daily_loss_breached", "exposure",
                 "open_positions", "candle_start", "updated_at", "last_notification_id")
        rows = [self.rows[k] for k in sorted(self.rows)]
        replace(con, "risk_usage", ["run_id", "day"],
                arrow(names, rows, {"day": "date", "candle_start": "time", "updated_at": "time"}))


def _number(text: str | None) -> str | None:
    """A limit as an exact decimal string, or None when unset or not a finite number."""
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return str(value) if value.is_finite() and value >= 0 else None


PROJECTIONS = (RiskUsageProjection(),)
