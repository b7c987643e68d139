"""Positions from fills: each run's average-cost position, now and fill by fill.

``positions``: one row per (run_id, product): signed ``quantity``,
``average_entry`` (NULL when flat), ``entry_cost``, gross ``realized_pnl``,
``fees``, and ``unrealized_pnl`` at ``mark_price``, the close of the last
candle of that run for the product. ``updated_at`` is the occurred_at (domain
time) of the last event that changed the row: a fill or a new candle.
``position_history``: one row per fill, with the position after it.

The books are the money ledger's (projections/ledger/walk.py): each run's
``domain.run_book.RunBook``, so every figure equals the trading loop's exactly.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from domain.accounting import FillEffect
from projections.engine.base import MONEY
from projections.ledger.book import Book, Event, arrow
from projections.ledger.together import apply_together, walk_together
from projections.ledger.walk import Ledger

__all__ = ["PositionsProjection", "apply_together", "walk_together"]


class PositionsProjection(Ledger):
    """Tables ``positions`` (per run and product, now) and ``position_history`` (per fill)."""

    name = "positions"
    outputs = ("positions", "position_history")

    def create_outputs(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS positions (
                run_id UUID NOT NULL, product VARCHAR NOT NULL, quantity {MONEY} NOT NULL,
                average_entry {MONEY}, entry_cost {MONEY} NOT NULL, realized_pnl {MONEY} NOT NULL,
                fees {MONEY} NOT NULL, unrealized_pnl {MONEY}, mark_price {MONEY},
                updated_at TIMESTAMPTZ NOT NULL, last_notification_id BIGINT NOT NULL)"""
        )
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS position_history (
                notification_id BIGINT NOT NULL, run_id UUID NOT NULL, product VARCHAR NOT NULL,
                occurred_at TIMESTAMPTZ NOT NULL, order_id UUID NOT NULL, fill_id VARCHAR NOT NULL,
                side VARCHAR NOT NULL, fill_quantity {MONEY} NOT NULL, price {MONEY} NOT NULL, fee {MONEY} NOT NULL,
                change VARCHAR NOT NULL, quantity {MONEY} NOT NULL, average_entry {MONEY},
                realized_pnl {MONEY} NOT NULL, cumulative_realized_pnl {MONEY} NOT NULL,
                cumulative_fees {MONEY} NOT NULL)"""
        )

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rows: dict[tuple[str, str], tuple[int, int]] = {}  # (run, product) -> (updated_at, nid)
        self.history: list[tuple] = []

    def on_step(self, book: Book, event: Event) -> None:
        if event.product in book.portfolio.positions:
            self.rows[(book.run, event.product)] = (event.at, event.nid)

    quiet = True

    def on_quiet(self, book: Book, steps: list[Event], closes: list) -> None:
        last = steps[-1]
        if last.product in book.portfolio.positions:
            self.rows[(book.run, last.product)] = (last.at, last.nid)

    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None:
        position = book.portfolio.positions[effect.product]
        self.rows[(book.run, effect.product)] = (event.at, event.nid)
        self.history.append((
            event.nid, book.run, effect.product, event.at, event.stream, event.fill_id, effect.side.value,
            effect.quantity, effect.price, effect.fee, effect.change.value, effect.position_quantity,
            effect.average_entry, effect.realized_pnl, position.realized_pnl, position.fees,
        ))

    def output_rows(self) -> list[tuple[str, list[str], pa.Table]]:
        rows: list[tuple] = []
        for (run, product), (at, nid) in sorted(self.rows.items()):
            book = self.books[run]
            p = book.portfolio.positions[product]
            mark = book.marks.get(product)
            unrealized = None if mark is None else p.unrealized_pnl(mark)
            rows.append((run, product, p.quantity, p.average_entry, p.entry_cost, p.realized_pnl, p.fees,
                         unrealized, mark, at, nid))
        names = ("run_id", "product", "quantity", "average_entry", "entry_cost", "realized_pnl", "fees",
                 "unrealized_pnl", "mark_price", "updated_at", "last_notification_id")
        positions = arrow(names, rows, {"updated_at": "time"})
        names = ("notification_id", "run_id", "product", "occurred_at", "order_id", "fill_id", "side",
                 "fill_quantity", "price", "fee", "change", "quantity", "average_entry", "realized_pnl",
                 "cumulative_realized_pnl", "cumulative_fees")
        history = arrow(names, self.history, {"occurred_at": "time"})
        return [("positions", ["run_id", "product"], positions), ("position_history", [], history)]


PROJECTIONS = (PositionsProjection(),)
