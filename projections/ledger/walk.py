"""The walk of the money projections: each run's books (``domain.run_book.RunBook``) folded page by page.

The ledger (``Ledger``, the base of projections/ledger/positions.py and, through ``DayRows``, of projections/ledger/pnl.py and
projections/ledger/risk_usage.py, each with its own copy of the state) folds
each run through its ``Book``, a ``domain.run_book.RunBook``: the trading loop's
own fold, so every figure equals the engine's exactly. It walks a batch's events
in notification order:

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
- Days, equity points and every day figure are the run book's (domain/run_book.py):
  a UTC day starts at the run's first event dated in it, its start equity is the
  equity at the run's decision on its first candle (before it, the equity before
  the opening event); a run's decision is its equity point.

State between batches lives in private tables ``<name>__state`` (one JSON row
per run, Decimals as exact strings, so an incremental catch-up equals a
rebuild digit for digit), ``<name>__orders`` (orders not yet terminal) and
``<name>__marks`` (candle closes). Output columns are DECIMAL(38, 18); a
figure with more than 18 decimals (a division) is rounded half-even there.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial

import duckdb
import pyarrow as pa

from domain.account import account_id
from domain.accounting import FillEffect
from domain.run_book import DEFAULT_DAILY_LOSS_LIMIT_PCT
from projections.engine.base import shared
from projections.ledger.book import DAY_US, GLOBAL, Book, Candle, Decided, Event, arrow, day_end, replace, utc_day
from projections.ledger import quiet as stretches
from projections.ledger.carry import Carry, recorded_closes
from projections.ledger.marks import beyond, frontier, write_marks
from projections.ledger.page import (DECISIONS, FILLS, LEDGER_TYPES, TERMINAL, _number, _time, page_marks,
                                     walk_events)
from projections.ledger.quiet import quiet_end, walk_quiet

LIMIT_PATH = "risk.max_daily_loss_pct"

class Ledger:
    """The walk over a batch shared by the money projections; subclasses fill the hooks.

    Only the events that can move a run's books are walked in Python: a candle that is no run's step and that no
    decision of the page names is only a mark, and marks are kept in ``<name>__marks`` by SQL. A decision that
    directly follows its run's own candle in the walk (the trading loop's usual order) rides on that candle's row
    instead of a row of its own. Money projections at one position apply a page as one walk (``apply_together``),
    the projector computes a page's walk rows ahead (``prepare``)."""

    name = "ledger"
    outputs: tuple[str, ...] = ()
    extra_types: tuple[str, ...] = ()
    x_keys: tuple[str, ...] = ()
    """The entries of ``Book.x`` this projection keeps (distinct between the money projections)."""
    quiet = False
    """Whether ``on_quiet`` stands for ``on_step`` and ``on_decision`` over a quiet stretch (projections/ledger/quiet.py)."""

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

    _walk_events = staticmethod(walk_events)
    _page_marks = staticmethod(page_marks)

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        self.walk(con, after)
        for write in self.writes(con, after):
            write(con)

    def walk(self, con: duckdb.DuckDBPyConnection, after: int, carry: Carry | None = None) -> None:
        """Fold the page's events into the books and this projection's rows (``con`` is only read; ``carry``: the
        state the walk of the page before left, whose writes may not be committed yet)."""
        events = shared("ledger-walk", after, lambda: self._walk_events(con, after))
        self.walked, self.carried = bool(events), carry
        if events:
            self._load(con, after, events, carry)
            self.begin(con)
            quiet = self.quiet and "CandleClosed" not in self.extra_types
            i, count = 0, len(events)
            while i < count:  # (types of the other money projections fall through _dispatch)
                event = events[i]
                if quiet and event.dnid is not None and event.run is not None and event.type == "CandleClosed":
                    end = quiet_end(self.books.get(event.run), events, i)
                    if end - i >= stretches.QUIET_FROM:
                        walk_quiet(self, self.books[event.run], events[i:end])
                        i = end
                        continue
                self._dispatch(event)
                if event.dnid is not None:
                    self._carried(event)
                i += 1
            for run in sorted(self._flushed()):
                self.flush(self.books[run])

    def writes(self, con: duckdb.DuckDBPyConnection, after: int) -> list[Callable[[duckdb.DuckDBPyConnection], None]]:
        """What the walk writes, as statements to run in one transaction, every row made now (a later walk may
        change the books meanwhile): each writer's state rows, orders and outputs (``_writers``), the marks."""
        ops: list[Callable[[duckdb.DuckDBPyConnection], None]] = []
        for member, runs, x_keys in self._writers() if self.walked else ():
            ops += self._state_writes(member.name, runs - {GLOBAL}, x_keys)
            ops += [partial(replace, table=table, keys=keys, rows=rows) for table, keys, rows in member.output_rows()]
        known, self.frontier = beyond(self.carried and self.carried.frontier, new := self._page_marks(con, after))
        tables = [f"{m.name}__marks" for m in getattr(self, "members", [self])]  # (the same rows in each)
        return [*ops, partial(write_marks, tables=tables, new=new, known=known)]

    def _writers(self) -> list[tuple[Ledger, set[str], tuple[str, ...] | None]]:
        """Whose rows ``writes`` writes: (projection, the runs whose books it writes, its keys of ``Book.x``)."""
        return [(self, self.touched, None)]

    def carry(self, con: duckdb.DuckDBPyConnection, after: int) -> Carry:
        """The state this walk leaves for the walk of the next page (``walk(..., carry)``)."""
        marks = self._page_marks(con, after)
        ahead = self.frontier if self.frontier is not None else beyond(frontier(con, f"{self.name}__marks"), marks)[1]
        if not self.walked:
            return Carry({}, None, {}, marks, ahead)
        orders: dict[str, tuple | None] = dict(self.orders)
        orders.update(dict.fromkeys(self.done_orders))
        return Carry(dict(self.books), self.glob, orders, marks, ahead)

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
    def on_update(self, book: Book, event: Event) -> None: ...
    def on_quiet(self, book: Book, steps: list[Event], closes: list[Decimal]) -> None:
        """A quiet stretch of the book's steps (each a run's candle with its decision riding on it, ``closes``
        their closes), the book already as after the last: what ``on_step`` and ``on_decision`` would have noted
        step by step (only called when ``quiet``)."""
        raise NotImplementedError
    def flush(self, book: Book) -> None:
        """Settle what a projection kept pending for the book: called before the book's day, day start
        equity or limit changes, and at the end of the batch (the book's state is then as at its last event)."""
    def output_rows(self) -> list[tuple[str, list[str], pa.Table]]:
        """The projection's output rows of the walk: (table, key columns, rows) to upsert."""
        return []

    # --- the walk ------------------------------------------------------------------------------------

    def _load(self, con: duckdb.DuckDBPyConnection, after: int, events: list[Event], carry: Carry | None = None) -> None:
        n = self.name
        filled = sorted({e.stream for e in events if e.type in FILLS})
        self.orders: dict[str, tuple[str | None, str, str]] = {}
        if carry is not None:  # the orders the page before changed: as it left them
            self.orders, filled = carry.orders_of(filled)
        if filled:
            self.orders.update((o, (r, p, s)) for o, r, p, s in con.execute(
                f"SELECT order_id, run_id, product, side FROM {n}__orders WHERE list_contains(?, order_id)",
                [filled]).fetchall())
        runs = {e.run for e in events if e.run} | {r for r, _, _ in self.orders.values() if r}
        runs |= {e.stream for e in events if e.type == "RunStarted"}
        if carry is None:
            self.books: dict[str, Book] = self._load_books(con, [*runs, GLOBAL])
            self.glob = self.books.pop(GLOBAL, None) or Book(run=GLOBAL)
            loaded = self.books.values()
        else:  # the books the page before walked are carried as it left them, the others read
            self.books = {run: carry.books[run] for run in runs if run in carry.books}
            read = self._load_books(con, [run for run in runs if run not in carry.books]
                                    + ([GLOBAL] if carry.glob is None else []))
            glob = read.pop(GLOBAL, None)
            self.glob = carry.glob or glob or Book(run=GLOBAL)
            loaded = read.values()
            self.books.update(read)
        self.glob_changed = False
        for book in loaded:
            self.thaw(book)
        self.touched: set[str] = set()
        # The closes recorded before this page of the candles its decisions name (a decision that rides on its
        # run's candle names that candle; its close is fetched only if that candle did not make the step).
        self.con = con
        self.named = {(e.product, e.candle_start) for e in events if e.type in DECISIONS and e.candle_start is not None}
        self.marks: dict[tuple[str, str, int], Decimal] = recorded_closes(con, f"{n}__marks", self.named, carry)
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
            book = self.books[run] = Book(run=run)
            limit = self.glob.config_limit
            if limit is not None:
                book.limit_pct = Decimal(limit)
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
            step = book.candle
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
        elif kind == "RiskAssessed":
            if e.run and e.rule == "max_daily_loss":
                book = self._book(e.run)
                self._roll_day(book, e)
                limit = _number(e.limit_pct)
                if limit is not None:
                    book.assessed_limit = limit
                    self._set_limit(book)
                book.refused_for_daily_loss(_time(e.at))
                self.on_update(book, e)
        elif kind == "ConfigChanged":
            if e.path == LIMIT_PATH:
                self.glob.config_limit = _number(e.new_value)
                self.glob_changed = True
                for book in self.books.values():
                    self._set_limit(book)
        elif kind == "TradingHalted" or kind == "TradingResumed":
            if e.run:
                book = self._book(e.run)
                self._roll_day(book, e)
                (book.halted if kind == "TradingHalted" else book.resumed)(_time(e.at))
                self.on_update(book, e)
        elif kind in ("FundsDeposited", "FundsWithdrawn"):
            if not e.run or e.stream != str(account_id(f"run-{e.run}")):
                return  # not a run's account
            book = self._book(e.run)
            self._roll_day(book, e)
            amount = Decimal(e.amount)
            if kind == "FundsDeposited":
                book.deposit(_time(e.at), amount)
            else:
                book.withdraw(_time(e.at), amount)
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
            for recorded, value in recorded_closes(self.con, f"{self.name}__marks", {(product, start)},
                                                   self.carried).items():
                self.marks.setdefault(recorded, value)  # (this page's own closes win)
            close = self.marks.get(key)
        return close

    def _carried(self, candle: Event) -> None:
        """The decision that came right after its run's candle (folded into the candle's row)."""
        book = self.books[candle.run]
        step = book.candle
        if step is not None and step.nid == candle.nid:  # that candle is the run's step: the decision names it
            self._decided(book, Decided(candle.dnid, candle.dtype, candle.run, candle.dat, candle.product,
                                        candle.start))
        else:
            self._dispatch(Event(candle.dnid, candle.dtype, None, candle.run, candle.dat, candle.product, None, None,
                                 None, candle.start, None, None, None, None, None, None, None, None, None, None))

    def _decided(self, book: Book, e: Event) -> None:
        self._roll_day(book, e)
        book.decided(_time(e.at))  # the run's equity point (the day's start equity at its first)
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
        effect = book.fill(_time(e.at), product, side, Decimal(e.quantity), Decimal(e.price), Decimal(e.fee))
        self.on_fill(book, e, effect)

    def _step(self, book: Book, e: Event, start: int, close: Decimal) -> None:
        self._roll_day(book, e)
        book.candle = Candle(e.product, start, e.at, close, e.nid)
        book.marks[e.product] = close
        self.on_step(book, e)

    def _roll_day(self, book: Book, e: Event) -> None:
        """Before an event dated ``e.at`` moves the book: a later UTC day closes the current one (its row is
        settled by ``flush`` first) and opens the next (``RunBook.roll``); an earlier date counts in the current day."""
        at = e.at
        end = book.day_end
        if end is not None and at < end:
            return
        current = book.current
        day = utc_day(at)
        if current is not None and day <= current.day:
            book.day_end = day_end(current.day)
            return
        self.flush(book)
        book.roll(_time(at))
        book.day_end = (at // DAY_US + 1) * DAY_US
        self.on_day(book, e)

    def _set_limit(self, book: Book) -> None:
        """The daily-loss limit in force for the run: a recorded config change of it, else the limit its latest
        ``max_daily_loss`` refusal named, else the default (3)."""
        self.flush(book)  # what came before was measured against the old limit
        limit = self.glob.config_limit or book.assessed_limit
        book.limit_pct = Decimal(limit) if limit is not None else DEFAULT_DAILY_LOSS_LIMIT_PCT

    def limit_source(self, book: Book) -> str:
        if self.glob.config_limit is not None:
            return "config"
        return "risk_assessed" if book.assessed_limit is not None else "default"

    def _state_writes(self, n: str, runs: set[str], keys: tuple[str, ...] | None) -> list[Callable]:
        """The writes of the books of ``runs`` (with ``keys`` of their x) and of the orders into ``n``'s state
        tables, their rows made now."""
        states = [(run, self.books[run].dump(keys)) for run in sorted(runs)]
        if self.glob_changed or any(keys is None or k in keys for k in self.glob.x):
            states.append((GLOBAL, self.glob.dump(keys)))
        ops = [partial(replace, table=f"{n}__state", keys=["key"], rows=arrow(("key", "state"), states))]
        if self.done_orders:
            done = sorted(self.done_orders)
            ops.append(lambda con: con.execute(f"DELETE FROM {n}__orders WHERE list_contains(?, order_id)", [done]))
        kept = [(o, *v) for o, v in self.new_orders.items() if o not in self.done_orders]
        ops.append(partial(replace, table=f"{n}__orders", keys=[],
                           rows=arrow(("order_id", "run_id", "product", "side"), kept)))
        return ops
