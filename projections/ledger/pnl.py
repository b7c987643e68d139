"""Daily P&L and the equity curve of every run (the money ledger: projections/ledger/walk.py).

``equity_curve``: one row per candle of the run ("step", see walk.py): the
candle's ``close`` and the run's ``cash``, ``position_quantity`` and
``equity`` = cash + quantity * close after every fill the run made on that
candle (fills dated at its close), ``peak_equity`` (highest equity of the
curve so far) and ``drawdown_pct`` = (peak - equity) / peak * 100. The last
row's equity is the run's final equity (RunSummary.final_equity).

``pnl_daily``: one row per run and UTC day with the day's figures as the run
book defines them (``domain.run_book.DayFigures``, the same names on every
surface): ``day_start_equity``, ``end_equity``, ``day_pnl``, ``realized_pnl``,
``fees``, ``daily_loss_pct``, ``worst_daily_loss_pct``, ``max_drawdown_pct``,
``risk_score`` (and ``risk_level``); beside them ``unrealized_pnl`` and
``equity`` (= end_equity) at the day's last event, ``net_pnl`` = realized - fees,
and ``trades``/``wins``: round trips closed that day and those whose realized
P&L minus all their fees was > 0 (domain/accounting.py).

A candle's day is the UTC date of its close (the event's occurred_at), as in
the trading loop: the 23:00 candle belongs to the next day.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa

from projections.engine.base import MONEY
from projections.ledger.book import ZERO, Book, Event, arrow
from projections.ledger.day_rows import DayRows

HUNDRED = Decimal(100)


class PnlProjection(DayRows):
    """Tables ``pnl_daily`` and ``equity_curve``."""

    name = "pnl"
    outputs = ("pnl_daily", "equity_curve")
    x_keys = ("last", "peak")

    def create_outputs(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS pnl_daily (
                run_id UUID NOT NULL, day DATE NOT NULL, day_start_equity {MONEY} NOT NULL,
                end_equity {MONEY} NOT NULL, day_pnl {MONEY} NOT NULL, realized_pnl {MONEY} NOT NULL,
                fees {MONEY} NOT NULL, daily_loss_pct {MONEY} NOT NULL, worst_daily_loss_pct {MONEY} NOT NULL,
                max_drawdown_pct {MONEY} NOT NULL, risk_score INTEGER NOT NULL, risk_level VARCHAR NOT NULL,
                unrealized_pnl {MONEY} NOT NULL, net_pnl {MONEY} NOT NULL, equity {MONEY} NOT NULL,
                trades INTEGER NOT NULL, wins INTEGER NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
                last_notification_id BIGINT NOT NULL)"""
        )
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS equity_curve (
                run_id UUID NOT NULL, product VARCHAR NOT NULL, candle_start TIMESTAMPTZ NOT NULL,
                candle_end TIMESTAMPTZ NOT NULL, close {MONEY} NOT NULL, cash {MONEY} NOT NULL,
                position_quantity {MONEY} NOT NULL, equity {MONEY} NOT NULL, peak_equity {MONEY} NOT NULL,
                drawdown_pct {MONEY} NOT NULL, notification_id BIGINT NOT NULL)"""
        )

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        super().begin(con)
        self.curve: dict[tuple[str, str, int], tuple] = {}
        self.days: dict[tuple[str, object], tuple] = {}

    def thaw(self, book: Book) -> None:
        x = book.x
        for key in ("last", "peak"):
            if x.get(key) is not None:
                x[key] = Decimal(x[key])

    # --- hooks (the day's row: DayRows) -------------------------------------------------------

    def on_step(self, book: Book, event: Event) -> None:
        x = book.x
        last = x.get("last")
        if last is not None:  # the previous candle's row is final now: it joins the peak
            peak = x.get("peak")
            x["peak"] = last if peak is None or last > peak else peak
        self._curve(book)
        self.touch(book, event)

    def on_fill(self, book: Book, event: Event, effect) -> None:
        self._revise(book, event)

    def on_quiet(self, book: Book, steps: list[Event], closes: list[Decimal]) -> None:
        """``on_step`` of each step of a quiet stretch: the equity (cash, no position held) is the same at every one,
        so only the peak can move (at the first two steps) and each row differs by its candle."""
        x = book.x
        equity = book.equity()
        cash = book.portfolio.cash
        position = book.portfolio.positions.get(book.product)
        quantity = ZERO if position is None else position.quantity
        run, product, curve = book.run, book.product, self.curve
        last, peak = x.get("last"), x.get("peak")
        top = drawdown = None
        for e, close in zip(steps, closes):
            if last is not None and (peak is None or last > peak):
                peak = last
            high = equity if peak is None or equity > peak else peak
            if high is not top:
                top, drawdown = high, (high - equity) / high * HUNDRED if high > 0 else ZERO
            curve[(run, product, e.start)] = (run, product, e.start, e.at, close, cash, quantity, equity, top, drawdown,
                                              e.nid)
            last = equity
        x["last"], x["peak"] = last, peak
        super().on_quiet(book, steps, closes)

    def on_cash(self, book: Book, event: Event) -> None:
        self._revise(book, event)

    # --- rows ------------------------------------------------------------------------------------

    def _revise(self, book: Book, event: Event) -> None:
        step = book.candle
        if step is not None and event.at <= step.at:  # dated at the current candle: part of its row
            self._curve(book)
        self.touch(book, event)

    def _curve(self, book: Book) -> None:
        step = book.candle
        equity = book.equity()
        book.x["last"] = equity
        before = book.x.get("peak")
        peak = equity if before is None or equity > before else before
        drawdown = (peak - equity) / peak * HUNDRED if peak > 0 else ZERO
        position = book.portfolio.positions.get(step.product)
        self.curve[(book.run, step.product, step.start)] = (
            book.run, step.product, step.start, step.at, step.close, book.portfolio.cash,
            ZERO if position is None else position.quantity, equity, peak, drawdown, step.nid,
        )

    def day_row(self, book: Book, f, pending: tuple[int, int]) -> None:
        """The day's row as at its last event (nothing has moved the book since)."""
        self.days[(book.run, f.day)] = (
            book.run, f.day, f.day_start_equity, f.end_equity, f.day_pnl, f.realized_pnl, f.fees, f.daily_loss_pct,
            f.worst_daily_loss_pct, f.max_drawdown_pct, f.risk_score, f.risk_level, f.unrealized_pnl,
            f.realized_pnl - f.fees, f.end_equity, f.trades, f.wins, *pending,
        )

    def output_rows(self) -> list[tuple[str, list[str], pa.Table]]:
        days = arrow(_DAY, [self.days[k] for k in sorted(self.days)], _DAY_KINDS)
        curve = arrow(_CURVE, [self.curve[k] for k in sorted(self.curve)], _CURVE_KINDS)
        return [("pnl_daily", ["run_id", "day"], days), ("equity_curve", ["run_id", "product", "candle_start"], curve)]


_DAY = ("run_id", "day", "day_start_equity", "end_equity", "day_pnl", "realized_pnl", "fees", "daily_loss_pct",
        "worst_daily_loss_pct", "max_drawdown_pct", "risk_score", "risk_level", "unrealized_pnl", "net_pnl", "equity",
        "trades", "wins", "updated_at", "last_notification_id")
_DAY_KINDS = {"day": "date", "updated_at": "time"}
_CURVE = ("run_id", "product", "candle_start", "candle_end", "close", "cash", "position_quantity", "equity",
          "peak_equity", "drawdown_pct", "notification_id")
# (every column's kind given: the curve is the walk's longest output, one row per step)
_CURVE_KINDS = {"run_id": "str", "product": "str", "candle_start": "time", "candle_end": "time", "close": "money",
                "cash": "money", "position_quantity": "money", "equity": "money", "peak_equity": "money",
                "drawdown_pct": "money", "notification_id": "int"}


PROJECTIONS = (PnlProjection(),)
