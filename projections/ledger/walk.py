"""The walk of the money projections: each run's books (``domain.run_book.RunBook``) folded page by page.

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

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from domain.account import account_id
from domain.accounting import FillEffect
from domain.order_states import TERMINAL_EVENTS
from projections.engine.base import shared
from projections.ledger.book import DAY_US, GLOBAL, Book, Candle, Decided, Event, arrow, day_end, replace, utc_day
from domain.run_book import DEFAULT_DAILY_LOSS_LIMIT_PCT

LIMIT_PATH = "risk.max_daily_loss_pct"

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
_CANDLE = '{"product": "VARCHAR", "granularity": "VARCHAR", "start": "TIMESTAMPTZ", "close": "VARCHAR"}'



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
    def on_update(self, book: Book, event: Event) -> None: ...
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
        self.glob = self.books.pop(GLOBAL, None) or Book(run=GLOBAL)
        self.glob_changed = False
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
            for g, c in self.con.execute(
                    f"SELECT granularity, close FROM {self.name}__marks WHERE start_us = {int(start)} AND product = ?",
                    [product]).fetchall():
                self.marks.setdefault((product, g, start), Decimal(c))
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

    def _save(self, con: duckdb.DuckDBPyConnection) -> None:
        self.touched.discard(GLOBAL)
        self._save_as(con, self.name, self.touched, None)

    def _save_as(self, con: duckdb.DuckDBPyConnection, n: str, runs: set[str], keys: tuple[str, ...] | None) -> None:
        """Write the books of ``runs`` (with ``keys`` of their x) and the orders into ``n``'s state tables."""
        states = [(run, self.books[run].dump(keys)) for run in sorted(runs)]
        if self.glob_changed or any(keys is None or k in keys for k in self.glob.x):
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
                        book = self.books[e.run] = Book(run=e.run)
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

    def on_update(self, book: Book, event: Event) -> None:
        for m in self.members:
            m.on_update(book, event)

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
