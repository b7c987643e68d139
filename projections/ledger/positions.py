"""Positions from fills: each run's average-cost ledger, now and fill by fill.

``positions``: one row per (run_id, product): signed ``quantity``,
``average_entry`` (NULL when flat), ``entry_cost``, gross ``realized_pnl``,
``fees``, and ``unrealized_pnl`` at ``mark_price``, the close of the last
candle of that run for the product. ``updated_at`` is the occurred_at (domain
time) of the last event that changed the row: a fill or a new candle.
``position_history``: one row per fill, with the position after it.

The ledger (``Ledger``, also the base of projections/ledger/pnl.py and
projections/ledger/risk_usage.py, each with its own copy of the state) books fills
with ``domain.accounting.Portfolio`` itself, so every figure equals the
engine's exactly. It walks a batch's events in notification order:

- ``RunStarted`` names the run's product and granularity; deposits and
  withdrawals count for run R when they are on R's account stream
  (``account_id("run-<R>")``, envelope run_id R).
- A fill belongs to the run of its ``OrderPlaced`` (side, product).
- A run's candles ("steps") are the ``CandleClosed`` of its product and
  granularity carrying its run_id, or, when the loop's candle was a duplicate
  already in the log (a second run over the same data, or imported candles),
  the candle named by the run's ``DecisionMade``/``DecisionFailed``, its close
  taken from the candles seen so far (a later ``CandleCorrected`` changes that
  close for later look-ups, not rows already written). Fills dated at a step's
  time belong to it.
- A UTC day (of occurred_at; a candle's is its close) starts at the run's first
  fill, deposit or candle dated in it; its start equity is the equity at the
  decision on its first candle, as the loop's daily-loss rule takes it
  (domain/risk.py); before that candle, the equity before the opening event.

State between batches lives in private tables ``<name>__state`` (one JSON row
per run, Decimals as exact strings, so an incremental catch-up equals a
rebuild digit for digit), ``<name>__orders`` (orders not yet terminal) and
``<name>__marks`` (candle closes). Output columns are DECIMAL(38, 18); a
figure with more than 18 decimals (a division) is rounded half-even there.
"""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Context, Decimal, localcontext
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from domain.account import account_id
from domain.accounting import FillEffect, Portfolio, Position
from projections.engine.base import MONEY, shared

ZERO = Decimal(0)
_SCALE = Decimal(1).scaleb(-18)
_WIDE = Context(prec=60)  # enough digits to round any DECIMAL(38, 18) value to 18 decimals exactly
DAY_US = 86_400_000_000
DECISIONS = ("DecisionMade", "DecisionFailed")
MONEY_TYPE = pa.decimal128(38, 18)
TIME_TYPE = pa.timestamp("us", tz="UTC")
FILLS = ("OrderPartiallyFilled", "OrderFilled", "FillDiscovered")  # a discovered fill books like any fill
TERMINAL = ("OrderFilled", "OrderCancelled", "OrderRejected", "OrderExpired")
LEDGER_TYPES = (
    "RunStarted", "FundsDeposited", "FundsWithdrawn", "OrderPlaced", *FILLS, "OrderCancelled", "OrderRejected",
    "OrderExpired", "CandleClosed", "CandleCorrected", "DecisionMade", "DecisionFailed",
)
# What the walk reads: every money projection's types (risk_usage adds two), so the three share one parse of a page.
WALK_TYPES = (*LEDGER_TYPES, "RiskAssessed", "ConfigChanged")
GLOBAL = "*"  # the state row of facts that belong to no run (e.g. configuration)

_FIELDS = (
    '{"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ", "product": "VARCHAR", '
    '"granularity": "VARCHAR", "start": "TIMESTAMPTZ", "close": "VARCHAR", '
    '"candle_start": "TIMESTAMPTZ", "side": "VARCHAR", "quantity": "VARCHAR", "price": "VARCHAR", '
    '"fee": "VARCHAR", "fill_id": "VARCHAR", "amount": "VARCHAR", "path": "VARCHAR", "new_value": "VARCHAR", '
    '"rule": "VARCHAR", "numbers": {"limit_pct": "VARCHAR"}}'
)
_CANDLE = '{"product": "VARCHAR", "granularity": "VARCHAR", "start": "TIMESTAMPTZ", "close": "VARCHAR"}'


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
class Step:
    """The run's current candle: its product, start, close time (at) and close."""

    product: str
    start: int
    at: int
    close: Decimal
    nid: int


@dataclass
class Book:
    """One run's ledger and where it is in time."""

    run: str
    product: str | None = None
    granularity: str | None = None
    portfolio: Portfolio = field(default_factory=Portfolio)
    marks: dict[str, Decimal] = field(default_factory=dict)  # last step close per product
    step: Step | None = None
    day: str | None = None  # ISO date (UTC) of the run's current day
    day_start_equity: Decimal | None = None
    day_start_at: int | None = None  # time of the day's first candle (None before it)
    x: dict[str, Any] = field(default_factory=dict)  # a projection's own state (JSON-able; Decimals saved as str)
    day_end: int | None = None  # (not saved) epoch microseconds where ``day`` ends, once known

    # --- figures (as domain.accounting.Portfolio computes them) -----------------------

    def open_positions(self) -> list[Position]:
        positions = self.portfolio.positions
        return [positions[name] for name in sorted(positions) if positions[name].is_held]

    def value(self, position: Position) -> Decimal:
        """Marked value of an open position; at its entry cost while no candle of the run marked it."""
        mark = self.marks.get(position.product)
        return position.entry_cost if mark is None else position.quantity * mark

    def equity(self) -> Decimal:
        positions = self.portfolio.positions
        if len(positions) == 1:  # the usual run: one product (the same sum as below, without the sort)
            (p,) = positions.values()
            if not p.quantity:
                return self.portfolio.cash + ZERO
            mark = self.marks.get(p.product)
            return self.portfolio.cash + (ZERO + (p.entry_cost if mark is None else p.quantity * mark))
        return self.portfolio.cash + sum((self.value(p) for p in self.open_positions()), ZERO)

    def unrealized(self) -> Decimal:
        return sum((self.value(p) - p.entry_cost for p in self.open_positions()), ZERO)

    def exposure(self) -> Decimal:
        return sum((abs(self.value(p)) for p in self.open_positions()), ZERO)

    # --- persistence ------------------------------------------------------------------

    def dump(self, keys: tuple[str, ...] | None = None) -> str:
        """The book as JSON; ``keys``: only those entries of ``x`` (None: all)."""
        p = self.portfolio
        positions = {
            name: [str(v) for v in (q.quantity, q.entry_cost, q.realized_pnl, q.fees, q._trip_pnl, q._trip_fees,
                                    q._trip_quantity)]
            for name, q in p.positions.items()
        }
        step = self.step
        return json.dumps({
            "product": self.product, "granularity": self.granularity,
            "portfolio": [str(v) for v in (p.cash, p.deposited, p.withdrawn, p.realized_pnl, p.fees_paid)]
            + [p.trades, p.wins, p.consecutive_losses],
            "positions": positions, "marks": {k: str(v) for k, v in self.marks.items()},
            "step": None if step is None else [step.product, step.start, step.at, str(step.close), step.nid],
            "day": self.day, "day_start_at": self.day_start_at,
            "day_start_equity": None if self.day_start_equity is None else str(self.day_start_equity),
            "x": {k: str(v) if isinstance(v, Decimal) else v for k, v in self.x.items() if keys is None or k in keys},
        }, sort_keys=True)

    @classmethod
    def load(cls, run: str, text: str) -> Book:
        s = json.loads(text)
        portfolio = Portfolio()
        money, counts = s["portfolio"][:5], s["portfolio"][5:]
        portfolio.cash, portfolio.deposited, portfolio.withdrawn, portfolio.realized_pnl, portfolio.fees_paid = map(
            Decimal, money)
        portfolio.trades, portfolio.wins, portfolio.consecutive_losses = counts
        for name, values in s["positions"].items():
            q = portfolio.positions[name] = Position(name)
            (q.quantity, q.entry_cost, q.realized_pnl, q.fees, q._trip_pnl, q._trip_fees,
             q._trip_quantity) = map(Decimal, values)
        step, start_equity = s["step"], s["day_start_equity"]
        return cls(
            run, s["product"], s["granularity"], portfolio, {k: Decimal(v) for k, v in s["marks"].items()},
            None if step is None else Step(step[0], step[1], step[2], Decimal(step[3]), step[4]),
            s["day"], None if start_equity is None else Decimal(start_equity), s["day_start_at"], s["x"],
        )


class Ledger:
    """The walk over a batch shared by the money projections; subclasses fill the hooks.

    Only the events that can move a run's books are walked in Python: a candle
    that is no run's step and that no decision of the page names is only a mark,
    and marks are kept in ``<name>__marks`` by SQL. A decision that directly
    follows its run's own candle in the walk (the trading loop's usual order)
    rides on that candle's row instead of a row of its own. Money projections at one position
    apply a page as one walk (``apply_together``), the projector computes a page's walk rows ahead
    (``prepare``).
    """

    name = "ledger"
    outputs: tuple[str, ...] = ()
    extra_types: tuple[str, ...] = ()
    x_keys: tuple[str, ...] = ()
    """The entries of ``Book.x`` this projection keeps (distinct between the money projections)."""

    @property
    def walk_group(self) -> str | None:
        """Projections of one group at one position may apply a page as one walk (``apply_together``)."""
        return "ledger" if type(self).apply is Ledger.apply else None

    @property
    def tables(self) -> tuple[str, ...]:
        return (*self.outputs, f"{self.name}__state", f"{self.name}__orders", f"{self.name}__marks")

    @property
    def event_types(self) -> tuple[str, ...]:
        return (*LEDGER_TYPES, *self.extra_types)

    # --- the Projection protocol ----------------------------------------------------------

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        n = self.name
        con.execute(f"CREATE TABLE IF NOT EXISTS {n}__state (key VARCHAR NOT NULL, state VARCHAR NOT NULL)")
        con.execute(f"CREATE TABLE IF NOT EXISTS {n}__orders (order_id VARCHAR NOT NULL, run_id VARCHAR, "
                    "product VARCHAR NOT NULL, side VARCHAR NOT NULL)")
        con.execute(f"CREATE TABLE IF NOT EXISTS {n}__marks (product VARCHAR NOT NULL, granularity VARCHAR NOT NULL, "
                    "start_us BIGINT NOT NULL, close VARCHAR NOT NULL)")
        self.create_outputs(con)

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in self.tables:
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def prepare(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        """Compute ahead what ``apply(con, after)`` reads from the page alone (its rows for the walk, its candle
        closes), kept by ``shared``: the projector calls it while it reads a page, before the page is applied."""
        shared("ledger-walk", after, lambda: self._walk_events(con, after))
        self._page_marks(con, after)

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        events = shared("ledger-walk", after, lambda: self._walk_events(con, after))
        if events:
            self._load(con, after, events)
            self.begin(con)
            for event in events:  # (types of the other money projections fall through _dispatch)
                self._dispatch(event)
                if event.dnid is not None:
                    self._carried(event)
            for run in sorted(self._flushed()):
                self.flush(self.books[run])
            self._save(con)
            self.write(con)
        self._save_marks(con, after)

    @staticmethod
    def _walk_events(con: duckdb.DuckDBPyConnection, after: int) -> list[Event]:
        types = ", ".join(f"'{t}'" for t in WALK_TYPES)
        # w: the events the walk needs, in log order (a run's candles, candles a decision of the page
        # names, everything else of the types); a decision right after the CandleClosed of its run, product
        # and candle is folded into that candle's row (dnid, dat, dtype).
        rows = con.execute(
            f"""WITH e AS MATERIALIZED (
                SELECT nid, type, CAST(j.originator_id AS VARCHAR) AS stream, CAST(j.run_id AS VARCHAR) AS run,
                       epoch_us(j.occurred_at) AS at_us, j
                FROM (SELECT notification_id AS nid, event_type AS type, json_transform(payload, '{_FIELDS}') AS j
                      FROM batch_events WHERE notification_id > $1 AND event_type IN ({types})
                      -- a page without decisions needs only its runs' candles: skip parsing the others
                      AND (event_type NOT IN ('CandleClosed', 'CandleCorrected')
                           OR NOT contains(CAST(payload AS VARCHAR), '"run_id":null')
                           OR EXISTS (SELECT 1 FROM batch_events WHERE notification_id > $1
                                      AND event_type IN ('DecisionMade', 'DecisionFailed'))))),
            named AS (SELECT DISTINCT j.product AS product, epoch_us(j.candle_start) AS s FROM e
                      WHERE type IN ('DecisionMade', 'DecisionFailed')),
            w AS (
                SELECT nid, type, stream, run, at_us, j.product AS product, j.granularity AS granularity,
                       epoch_us(j.start) AS start, j.close AS close, epoch_us(j.candle_start) AS candle_start,
                       j.side AS side, j.quantity AS quantity, j.price AS price, j.fee AS fee, j.fill_id AS fill_id,
                       j.amount AS amount, j.path AS path, j.new_value AS new_value, j.rule AS rule,
                       j.numbers.limit_pct AS limit_pct
                FROM e LEFT JOIN named ON type IN ('CandleClosed', 'CandleCorrected')
                     AND named.product = j.product AND named.s = epoch_us(j.start)
                WHERE type NOT IN ('CandleClosed', 'CandleCorrected') OR (type = 'CandleClosed' AND run IS NOT NULL)
                      OR named.s IS NOT NULL),
            x AS (
                SELECT *,
                    type = 'CandleClosed' AND lead(type) OVER o IN ('DecisionMade', 'DecisionFailed')
                        AND lead(run) OVER o = run AND lead(product) OVER o = product
                        AND lead(candle_start) OVER o = start AS carries,
                    type IN ('DecisionMade', 'DecisionFailed') AND lag(type) OVER o = 'CandleClosed'
                        AND lag(run) OVER o = run AND lag(product) OVER o = product
                        AND lag(start) OVER o = candle_start AS carried,
                    lead(nid) OVER o AS next_nid, lead(at_us) OVER o AS next_at, lead(type) OVER o AS next_type
                FROM w WINDOW o AS (ORDER BY nid))
            SELECT nid, type, stream, run, at_us, product, granularity, start, close, candle_start, side, quantity,
                   price, fee, fill_id, amount, path, new_value, rule, limit_pct,
                   CASE WHEN carries THEN next_nid END, CASE WHEN carries THEN next_at END,
                   CASE WHEN carries THEN next_type END
            FROM x WHERE carried IS NOT TRUE ORDER BY nid""",
            [after],
        ).fetchall()
        return [Event(*row) for row in rows]

    # --- hooks ----------------------------------------------------------------------------------

    def create_outputs(self, con: duckdb.DuckDBPyConnection) -> None: ...
    def begin(self, con: duckdb.DuckDBPyConnection) -> None: ...
    def thaw(self, book: Book) -> None: ...
    def on_step(self, book: Book, event: Event) -> None: ...
    def on_decision(self, book: Book, event: Event) -> None: ...
    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None: ...
    def on_cash(self, book: Book, event: Event) -> None: ...
    def on_other(self, book: Book | None, event: Event) -> None: ...
    def on_day(self, book: Book, event: Event) -> None: ...
    def flush(self, book: Book) -> None:
        """Settle what a projection kept pending for the book: called before the book's day, day start
        equity or limit changes, and at the end of the batch (the book's state is then as at its last event)."""
    def write(self, con: duckdb.DuckDBPyConnection) -> None: ...

    # --- the walk ------------------------------------------------------------------------------------

    def _load(self, con: duckdb.DuckDBPyConnection, after: int, events: list[Event]) -> None:
        n = self.name
        filled = sorted({e.stream for e in events if e.type in FILLS})
        self.orders: dict[str, tuple[str | None, str, str]] = {
            o: (r, p, s) for o, r, p, s in con.execute(
                f"SELECT order_id, run_id, product, side FROM {n}__orders WHERE list_contains(?, order_id)",
                [filled]).fetchall()
        } if filled else {}
        runs = {e.run for e in events if e.run} | {r for r, _, _ in self.orders.values() if r}
        runs |= {e.stream for e in events if e.type == "RunStarted"}
        self.books: dict[str, Book] = self._load_books(con, [*runs, GLOBAL])
        self.glob = self.books.pop(GLOBAL, None) or Book(GLOBAL)
        for book in self.books.values():
            self.thaw(book)
        self.touched: set[str] = set()
        # The closes recorded before this page of the candles its decisions name (a decision that rides on its
        # run's candle names that candle; its close is fetched only if that candle did not make the step).
        self.con = con
        self.named = {(e.product, e.candle_start) for e in events if e.type in DECISIONS and e.candle_start is not None}
        self.marks: dict[tuple[str, str, int], Decimal] = {}
        if self.named:
            starts = [start for _, start in self.named]
            for p, g, s, c in con.execute(  # (literal bounds: DuckDB skips the row groups outside them)
                    f"""SELECT product, granularity, start_us, close FROM {n}__marks
                    WHERE start_us BETWEEN {int(min(starts))} AND {int(max(starts))}
                    AND list_contains(?, product)""", [sorted({p for p, _ in self.named})]).fetchall():
                if (p, s) in self.named:
                    self.marks[(p, g, s)] = Decimal(c)
        self.new_orders: dict[str, tuple[str | None, str, str]] = {}
        self.done_orders: set[str] = set()

    def _load_books(self, con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, Book]:
        return {key: Book.load(key, text) for key, text in con.execute(
            f"SELECT key, state FROM {self.name}__state WHERE list_contains(?, key)", [keys]).fetchall()}

    def _flushed(self) -> set[str]:
        """The runs whose books are settled at the end of the batch."""
        return self.touched

    def _other(self, e: Event) -> None:
        self.on_other(self._book(e.run) if e.run else None, e)

    def _book(self, run: str) -> Book:
        book = self.books.get(run)
        if book is None:
            book = self.books[run] = Book(run)
        self.touched.add(run)
        return book

    def _dispatch(self, e: Event) -> None:
        kind = e.type
        if kind == "CandleClosed" or kind == "CandleCorrected":
            close = self.marks[(e.product, e.granularity, e.start)] = Decimal(e.close)
            if kind == "CandleClosed" and e.run:
                book = self._book(e.run)
                if book.product == e.product and book.granularity == e.granularity:
                    self._step(book, e, e.start, close)
        elif kind in FILLS:
            self._fill(e)
        elif kind in DECISIONS:
            book = self._book(e.run) if e.run else None
            if book is None or book.product != e.product:
                return
            step = book.step
            if step is None or (step.product, step.start) != (e.product, e.candle_start):
                close = self._mark(e.product, book.granularity, e.candle_start)
                if close is None:
                    return  # the run's candle was never recorded: no step
                self._step(book, e, e.candle_start, close)
            self._decided(book, e)
        elif kind == "OrderPlaced":
            self.orders[e.stream] = self.new_orders[e.stream] = (e.run, e.product, e.side)
        elif kind == "RunStarted":
            book = self._book(e.stream)
            book.product, book.granularity = e.product, e.granularity
        elif kind in ("FundsDeposited", "FundsWithdrawn"):
            if not e.run or e.stream != str(account_id(f"run-{e.run}")):
                return  # not a run's account
            book = self._book(e.run)
            self._roll_day(book, e)
            amount = Decimal(e.amount)
            p = book.portfolio
            if kind == "FundsDeposited":
                p.cash += amount
                p.deposited += amount
            else:
                p.cash -= amount
                p.withdrawn += amount
            self.on_cash(book, e)
        if kind in TERMINAL:
            self.done_orders.add(e.stream)
        if kind in self.extra_types:
            self._other(e)

    def _mark(self, product: str, granularity: str | None, start: int) -> Decimal | None:
        """The close of a candle as the walk stands: this page's candles so far, else the table's."""
        key = (product, granularity, start)
        close = self.marks.get(key)
        if close is None and (product, start) not in self.named and granularity is not None:
            self.named.add((product, start))
            for g, c in self.con.execute(
                    f"SELECT granularity, close FROM {self.name}__marks WHERE start_us = {int(start)} AND product = ?",
                    [product]).fetchall():
                self.marks.setdefault((product, g, start), Decimal(c))
            close = self.marks.get(key)
        return close

    def _carried(self, candle: Event) -> None:
        """The decision that came right after its run's candle (folded into the candle's row)."""
        book = self.books[candle.run]
        step = book.step
        if step is not None and step.nid == candle.nid:  # that candle is the run's step: the decision names it
            self._decided(book, Decided(candle.dnid, candle.dtype, candle.run, candle.dat, candle.product,
                                        candle.start))
        else:
            self._dispatch(Event(candle.dnid, candle.dtype, None, candle.run, candle.dat, candle.product, None, None,
                                 None, candle.start, None, None, None, None, None, None, None, None, None, None))

    def _decided(self, book: Book, e: Event) -> None:
        if book.day_start_at == e.at:  # the decision on the day's first candle: risk's start-of-day equity
            self.flush(book)
            book.day_start_equity = book.equity()
        self.on_decision(book, e)

    def _fill(self, e: Event) -> None:
        order = self.orders.get(e.stream)
        if order is None:
            return  # an order placed before this projection's history; nothing to book it by
        run, product, side = order
        run = run or e.run
        if not run:
            return
        book = self._book(run)
        self._roll_day(book, e)
        effect = book.portfolio.apply_fill(product, side, Decimal(e.quantity), Decimal(e.price), Decimal(e.fee))
        self.on_fill(book, e, effect)

    def _step(self, book: Book, e: Event, start: int, close: Decimal) -> None:
        self._roll_day(book, e)  # (a new day's start equity is taken below, at this candle)
        book.step = Step(e.product, start, e.at, close, e.nid)
        book.marks[e.product] = close
        if book.day_start_at is None:  # the day's first candle: its start equity is taken here, then at its decision
            self.flush(book)
            book.day_start_at, book.day_start_equity = e.at, book.equity()
        self.on_step(book, e)

    def _roll_day(self, book: Book, e: Event) -> None:
        at = e.at
        end = book.day_end
        if end is not None and at < end:
            return  # within the current day (or before it: an earlier date counts in the current day)
        day = iso_day(at)
        if book.day is not None and day <= book.day:
            book.day_end = day_end(book.day)
            return  # a run's events come in domain-time order; an earlier date counts in the current day
        self.flush(book)
        # Until the day's first candle, its start equity is the equity before the event that opened it.
        book.day, book.day_start_at, book.day_start_equity = day, None, book.equity()
        book.day_end = (at // DAY_US + 1) * DAY_US
        self.on_day(book, e)

    def _save(self, con: duckdb.DuckDBPyConnection) -> None:
        self.touched.discard(GLOBAL)
        self._save_as(con, self.name, self.touched, None)

    def _save_as(self, con: duckdb.DuckDBPyConnection, n: str, runs: set[str], keys: tuple[str, ...] | None) -> None:
        """Write the books of ``runs`` (with ``keys`` of their x) and the orders into ``n``'s state tables."""
        states = [(run, self.books[run].dump(keys)) for run in sorted(runs)]
        if any(keys is None or k in keys for k in self.glob.x):
            states.append((GLOBAL, self.glob.dump(keys)))
        replace(con, f"{n}__state", ["key"], arrow(("key", "state"), states))
        if self.done_orders:
            con.execute(f"DELETE FROM {n}__orders WHERE list_contains(?, order_id)", [sorted(self.done_orders)])
        kept = [(o, *v) for o, v in self.new_orders.items() if o not in self.done_orders]
        replace(con, f"{n}__orders", [], arrow(("order_id", "run_id", "product", "side"), kept))

    def _save_marks(self, con: duckdb.DuckDBPyConnection, after: int, known: bool | None = None) -> None:
        """Every candle's close (the last correction in the page wins), set-based.

        ``known``: whether any of the page's candles already has a row (None: not known, so delete them)."""
        new = self._page_marks(con, after)
        if new.num_rows == 0:
            return
        n = self.name
        bounds = pc.min_max(new.column("start_us"))
        view = f"_new_{n}__marks"
        con.register(view, new)
        try:  # (literal bounds: DuckDB skips the table's row groups outside them)
            if known is not False:
                con.execute(f"""DELETE FROM {n}__marks AS t USING {view} AS k
                    WHERE t.start_us BETWEEN {int(bounds["min"].as_py())} AND {int(bounds["max"].as_py())}
                    AND t.product = k.product AND t.granularity = k.granularity AND t.start_us = k.start_us""")
            con.execute(f"INSERT INTO {n}__marks BY NAME SELECT * FROM {view}")
        finally:
            con.unregister(view)

    def _marks_known(self, con: duckdb.DuckDBPyConnection, after: int) -> bool:
        """Whether any candle of the page already has a row in this projection's marks."""
        new = self._page_marks(con, after)
        if new.num_rows == 0:
            return False
        bounds = pc.min_max(new.column("start_us"))
        view = f"_new_{self.name}__marks"
        con.register(view, new)
        try:
            return con.execute(f"""SELECT EXISTS (SELECT 1 FROM {self.name}__marks AS t SEMI JOIN {view} AS k
                ON t.product = k.product AND t.granularity = k.granularity AND t.start_us = k.start_us
                WHERE t.start_us BETWEEN {int(bounds["min"].as_py())} AND {int(bounds["max"].as_py())})""").fetchall()[0][0]
        finally:
            con.unregister(view)

    @staticmethod
    def _page_marks(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
        """The page's candle closes after ``after`` (product, granularity, start_us, close)."""
        page = f"""(SELECT notification_id AS nid, j.product AS product, j.granularity AS granularity,
                          epoch_us(j.start) AS start_us, j.close AS close
                   FROM (SELECT notification_id, json_transform(payload, '{_CANDLE}') AS j FROM batch_events
                         WHERE notification_id > {int(after)} AND event_type IN ('CandleClosed', 'CandleCorrected')))"""
        return shared("ledger-marks", after, lambda: con.sql(
            f"""SELECT product, granularity, start_us, arg_max(close, nid) AS close FROM {page}
            GROUP BY product, granularity, start_us""").to_arrow_table())


class _Together(Ledger):
    """One walk of a batch for several money projections at the same position (a rebuild, a catch-up).

    The books are walked once and every hook is handed to each member, in the order each one's own
    walk would call it; the members keep their own output rows and ``Book.x`` entries (``x_keys``,
    distinct). Each member's tables get exactly what its own ``apply`` would write: its state rows
    (the runs it touched, its x entries only), orders and marks. Books are read from every member's
    state table, each member's x entries from its own.
    """

    def __init__(self, members: list[Ledger]):
        self.members = members
        self.name = members[0].name  # orders and marks are the same in every member's tables
        self.extra_types = tuple(dict.fromkeys(t for m in members for t in m.extra_types))

    def _load(self, con: duckdb.DuckDBPyConnection, after: int, events: list[Event]) -> None:
        super()._load(con, after, events)
        self.extra_touched: dict[str, set[str]] = {m.name: set() for m in self.members}
        for m in self.members:
            m.books, m.glob = self.books, self.glob

    def _load_books(self, con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, Book]:
        books: dict[str, Book] = {}
        for m in self.members:
            for key, text in con.execute(
                    f"SELECT key, state FROM {m.name}__state WHERE list_contains(?, key)", [keys]).fetchall():
                book = Book.load(key, text)
                mine = {k: v for k, v in book.x.items() if k in m.x_keys}
                if key in books:
                    books[key].x.update(mine)
                else:
                    book.x = mine
                    books[key] = book
        return books

    def _flushed(self) -> set[str]:
        return self.touched.union(*self.extra_touched.values())

    def _other(self, e: Event) -> None:
        for m in self.members:
            if e.type in m.extra_types:
                book = None
                if e.run:
                    book = self.books.get(e.run)
                    if book is None:
                        book = self.books[e.run] = Book(e.run)
                    self.extra_touched[m.name].add(e.run)
                m.on_other(book, e)

    def _save(self, con: duckdb.DuckDBPyConnection) -> None:
        self.touched.discard(GLOBAL)
        for m in self.members:
            runs = self.touched | self.extra_touched[m.name]
            runs.discard(GLOBAL)
            self._save_as(con, m.name, runs, m.x_keys)

    def _save_marks(self, con: duckdb.DuckDBPyConnection, after: int, known: bool | None = None) -> None:
        known = self.members[0]._marks_known(con, after)  # (every member's marks are the same rows)
        for m in self.members:
            m._save_marks(con, after, known)

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        for m in self.members:
            m.begin(con)

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        for m in self.members:
            m.write(con)

    def thaw(self, book: Book) -> None:
        for m in self.members:
            m.thaw(book)

    def on_step(self, book: Book, event: Event) -> None:
        for m in self.members:
            m.on_step(book, event)

    def on_decision(self, book: Book, event: Event) -> None:
        for m in self.members:
            m.on_decision(book, event)

    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None:
        for m in self.members:
            m.on_fill(book, event, effect)

    def on_cash(self, book: Book, event: Event) -> None:
        for m in self.members:
            m.on_cash(book, event)

    def on_day(self, book: Book, event: Event) -> None:
        for m in self.members:
            m.on_day(book, event)

    def flush(self, book: Book) -> None:
        for m in self.members:
            m.flush(book)


def apply_together(con: duckdb.DuckDBPyConnection, after: int, members: list[Ledger]) -> None:
    """Apply ``batch_events`` after ``after`` to money projections at that same position in one walk;
    their tables end exactly as if each had applied it on its own (in the caller's transaction)."""
    if len(members) == 1:
        members[0].apply(con, after)
    else:
        _Together(list(members)).apply(con, after)


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


def day_end(day: str) -> int:
    """Epoch microseconds where the UTC day ``day`` (ISO date) ends."""
    return (date.fromisoformat(day).toordinal() - _EPOCH + 1) * DAY_US


def iso_day(micros: int) -> str:
    """``utc_day(micros).isoformat()``, remembered per day."""
    number = micros // DAY_US
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = utc_day(number * DAY_US).isoformat()
    return day


def replace(con: duckdb.DuckDBPyConnection, table: str, keys: list[str], rows: pa.Table) -> None:
    """Upsert: delete the rows with the same key columns, insert ``rows`` (by column name)."""
    if rows.num_rows == 0:
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


# --- the positions projection --------------------------------------------------------------


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

    def on_fill(self, book: Book, event: Event, effect: FillEffect) -> None:
        position = book.portfolio.positions[effect.product]
        self.rows[(book.run, effect.product)] = (event.at, event.nid)
        self.history.append((
            event.nid, book.run, effect.product, event.at, event.stream, event.fill_id, effect.side.value,
            effect.quantity, effect.price, effect.fee, effect.change.value, effect.position_quantity,
            effect.average_entry, effect.realized_pnl, position.realized_pnl, position.fees,
        ))

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        out: list[tuple] = []
        for (run, product), (at, nid) in sorted(self.rows.items()):
            book = self.books[run]
            p = book.portfolio.positions[product]
            mark = book.marks.get(product)
            unrealized = None if mark is None else p.unrealized_pnl(mark)
            out.append((run, product, p.quantity, p.average_entry, p.entry_cost, p.realized_pnl, p.fees,
                        unrealized, mark, at, nid))
        names = ("run_id", "product", "quantity", "average_entry", "entry_cost", "realized_pnl", "fees",
                 "unrealized_pnl", "mark_price", "updated_at", "last_notification_id")
        replace(con, "positions", ["run_id", "product"], arrow(names, out, {"updated_at": "time"}))
        names = ("notification_id", "run_id", "product", "occurred_at", "order_id", "fill_id", "side",
                 "fill_quantity", "price", "fee", "change", "quantity", "average_entry", "realized_pnl",
                 "cumulative_realized_pnl", "cumulative_fees")
        replace(con, "position_history", [], arrow(names, self.history, {"occurred_at": "time"}))


def exact_text(value: Decimal | None) -> str | None:
    """A Decimal as text DuckDB casts to DECIMAL(38, 18) exactly: ``money(value)``, printed."""
    if value is None:
        return None
    text = str(value)
    point = text.find(".")
    if "E" in text or (point >= 0 and len(text) - point > 19):
        return str(value.quantize(_SCALE, context=_WIDE))
    return text


_LONG = r"E|\.[0-9]{19}"  # the printed Decimals that need exact_text's rounding (or are exponent-printed)


def money_texts(values: list[Decimal | None]) -> pa.Array:
    """``exact_text`` of each value as an arrow string column (printing all, rounding only those that need it)."""
    texts = [None if v is None else str(v) for v in values]
    column = pa.array(texts, pa.string())
    long = pc.match_substring_regex(column, _LONG)
    if pc.any(long).as_py():
        for i in pc.indices_nonzero(long).to_pylist():
            texts[i] = exact_text(values[i])
        column = pa.array(texts, pa.string())
    return column


def arrow(names: tuple[str, ...], rows: list[tuple], kinds: dict[str, str] | None = None) -> pa.Table:
    """Rows to a pyarrow table: ``time`` columns from epoch microseconds; Decimals as exact text
    (``exact_text``), which the INSERT into a DECIMAL(38, 18) column casts (faster than arrow decimals)."""
    kinds = kinds or {}
    columns = list(zip(*rows)) if rows else [()] * len(names)
    arrays = []
    for name, values in zip(names, columns):
        values = list(values)
        kind = kinds.get(name)
        if kind == "time":
            arrays.append(pa.array(values, pa.int64()).cast(TIME_TYPE))
        elif kind == "date":
            arrays.append(pa.array(values, pa.date32()))
        elif any(isinstance(v, Decimal) for v in values):
            arrays.append(money_texts(values))
        elif any(isinstance(v, bool) for v in values):
            arrays.append(pa.array(values, pa.bool_()))
        elif any(isinstance(v, int) for v in values):
            arrays.append(pa.array(values, pa.int64()))
        else:
            arrays.append(pa.array(values, pa.string()))
    return pa.Table.from_arrays(arrays, names=list(names))


PROJECTIONS = (PositionsProjection(),)
