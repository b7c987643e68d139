"""Restart: rebuild the paper/live book from the log, then reconcile it with the venue.

On start the runner first rebuilds, from the log alone, what earlier runs of the
same mode left: working orders, fills per order, the open position per product
and the balances last reconciled. Live, it then asks the venue about each
working order (by its client_order_id, so an order whose answer was never
recorded is found), for fills since the last recorded fill, and for balances,
and records every difference as an explicit event:

- ``OrderReconciled``: the venue's status differs (accepted, cancelled, expired,
  failed), or the venue never saw the order (it is cancelled, never resent);
- ``FillDiscovered``: a venue fill the log did not have (never a synthetic fill:
  every field is the venue's);
- ``BalanceReconciled``: a currency's venue balance differs from the recorded one
  (the last reconciled balance moved by the fills recorded since).

Paper: the paper exchange died with its process, so working paper orders of
earlier runs are reconciled to CANCELLED; each paper run starts its own book.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from eventsourcing.utils import get_topic

from application.operations.controls import ORDER_EVENTS
from application.ports import VenueAccount, VenueClientError, VenueFill, VenueOrder
from application.trading_app import TradingApplication
from domain.account import BalanceReconciled, account_id
from domain.accounting import Portfolio, Position
from domain.control import RunEnded, RunMode, RunStarted
from domain.events import EventMeta
from domain.order import (
    FillDiscovered,
    Order,
    OrderFilled,
    OrderPartiallyFilled,
    OrderSide,
    OrderStatus,
)

log = logging.getLogger("tradecore.reconciliation")
ZERO = Decimal(0)
LIVE_ACCOUNT = "live"
FILL_TYPES = (OrderPartiallyFilled, OrderFilled, FillDiscovered)
WORKING_AT_VENUE = {"OPEN", "PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"}


@dataclass
class Book:
    """What the log says earlier runs of one mode left behind."""

    mode: RunMode
    orders: dict[uuid.UUID, Order] = field(default_factory=dict)
    placed_at: dict[uuid.UUID, datetime] = field(default_factory=dict)
    portfolio: Portfolio = field(default_factory=Portfolio)
    last_fill_at: datetime | None = None
    balances: dict[str, Decimal] = field(default_factory=dict)  # recorded: last reconciled + fills since

    @property
    def working(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_working]

    def by_venue_id(self) -> dict[str, Order]:
        return {o.venue_order_id: o for o in self.orders.values() if o.venue_order_id}

    def book_fill(self, order: Order, quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        self.portfolio.apply_fill(order.product, order.side, quantity, price, fee)
        self.book_balance(order, quantity, price, fee)

    def book_balance(self, order: Order, quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        """A fill's move of the venue balances (any bot's: the bots of a mode share the venue account)."""
        base, _, quote = order.product.partition("-")
        sign = 1 if order.side is OrderSide.BUY else -1
        self.balances[base] = self.balances.get(base, ZERO) + sign * quantity
        self.balances[quote] = self.balances.get(quote, ZERO) - sign * quantity * price - fee


def _of_bot(started: RunStarted, mode: RunMode, bot: str | None) -> bool:
    """Whether a run is ``bot``'s in ``mode`` (``bot`` None: any bot's, as before bots had ids)."""
    return started.mode is mode and (bot is None or started.bot == bot)


def rebuild_book(store: TradingApplication, mode: RunMode, bot: str | None = None) -> Book:
    """The book of every earlier run of ``mode`` by ``bot``, from the log (orders, fills, position, balances).

    Another bot's orders on the same store are never in its orders or position: a restart reconciles only
    its own. Their fills do move the recorded balances: the bots of a mode share the venue account, so the
    balance the venue should hold is the last reconciled one moved by every bot's fills since."""
    book = Book(mode)
    started = [e.event for e in store.iter_log(topics=[get_topic(RunStarted)]) if e.event.mode is mode]
    runs = {s.originator_id for s in started if _of_bot(s, mode, bot)}
    fleet = {s.originator_id for s in started} - runs
    live_account = account_id(LIVE_ACCOUNT)
    topics = [get_topic(cls) for cls in ORDER_EVENTS] + [get_topic(BalanceReconciled)]
    placed_runs: dict[uuid.UUID, bool | None] = {}  # ours, another bot's of this mode (None), or neither
    others: dict[uuid.UUID, Order] = {}
    for logged in store.iter_log(topics=topics):
        event = logged.event
        if isinstance(event, BalanceReconciled):
            if mode is RunMode.LIVE and event.originator_id == live_account:
                book.balances[event.currency] = event.venue
            continue
        order_id = event.originator_id
        if order_id not in placed_runs:  # an order belongs to the run that placed it
            placed_runs[order_id] = True if event.run_id in runs else None if event.run_id in fleet else False
            if placed_runs[order_id]:
                book.placed_at[order_id] = event.occurred_at
        if placed_runs[order_id] is None and mode is RunMode.LIVE:
            other = others[order_id] = event.mutate(others.get(order_id))
            if isinstance(event, FILL_TYPES):
                book.book_balance(other, event.quantity, event.price, event.fee)
        if not placed_runs[order_id]:
            continue
        order = book.orders[order_id] = event.mutate(book.orders.get(order_id))
        if isinstance(event, FILL_TYPES):
            book.book_fill(order, event.quantity, event.price, event.fee)
            if book.last_fill_at is None or event.occurred_at > book.last_fill_at:
                book.last_fill_at = event.occurred_at
    return book


@dataclass
class Reconciliation:
    """What reconciling with the venue recorded."""

    orders_reconciled: int = 0
    fills_discovered: int = 0
    balances_reconciled: int = 0
    foreign_fills: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.orders_reconciled} order(s) reconciled, {self.fills_discovered} fill(s) discovered, "
                f"{self.balances_reconciled} balance(s) reconciled, {self.foreign_fills} fill(s) of orders not ours")


def reconcile_paper(store: TradingApplication, book: Book, meta: Callable[[], EventMeta]) -> Reconciliation:
    """Working paper orders of earlier runs are cancelled: their paper exchange ended with its process."""
    result = Reconciliation()
    for order in book.working:
        order.reconcile(meta(), OrderStatus.CANCELLED, "SESSION_ENDED",
                        "the paper exchange holding this order ended with its process")
        store.record_in_order(order.collect_events())
        result.orders_reconciled += 1
    return result


def reconcile_live(store: TradingApplication, book: Book, venue: VenueAccount, meta: Callable[[], EventMeta],
                   products: tuple[str, ...]) -> Reconciliation:
    """Ask the venue about every working order, fills since the last recorded one, and balances; record differences."""
    result = Reconciliation()
    for order in book.working:
        _reconcile_order(store, book, venue, order, meta, result)
    # Fills since the last recorded fill, on any of our orders (including ones the log thinks are done).
    since = book.last_fill_at - timedelta(minutes=5) if book.last_fill_at else None
    by_venue = book.by_venue_id()
    for product in products:
        for fill in venue.fills_since(since, product):
            order = by_venue.get(fill.venue_order_id)
            if order is None:
                result.foreign_fills += 1
                continue
            _discover(store, book, order, fill, meta, result, "listed by the venue since the last recorded fill")
    balances = venue.balances()
    currencies = sorted({c for p in products for c in p.split("-")})
    for currency in currencies:
        recorded = book.balances.get(currency, ZERO)
        actual = balances.get(currency, ZERO)
        if store.reconcile_balance(currency, recorded, actual, meta(), account=LIVE_ACCOUNT):
            result.balances_reconciled += 1
            book.balances[currency] = actual
            result.notes.append(f"{currency}: recorded {recorded}, venue {actual}, difference {actual - recorded}")
    return result


def _reconcile_order(store: TradingApplication, book: Book, venue: VenueAccount, order: Order,
                     meta: Callable[[], EventMeta], result: Reconciliation) -> None:
    try:
        found = venue.find_order(order.client_order_id, order.venue_order_id, book.placed_at.get(order.id))
    except VenueClientError as exc:  # e.g. 404: the venue no longer knows the id we recorded
        log.warning("order %s: venue lookup refused (%s)", order.client_order_id, exc)
        found = None
    if found is None:
        order.reconcile(meta(), OrderStatus.CANCELLED, "NOT_FOUND",
                        "not found at the venue on restart: it never reached the venue; not resent (its decision is stale)")
        _save(store, order, result)
        return
    if order.status in (OrderStatus.PLACED, OrderStatus.SUBMITTED) or found.venue_order_id != order.venue_order_id:
        target = OrderStatus.ACCEPTED if order.status in (OrderStatus.PLACED, OrderStatus.SUBMITTED) else order.status
        order.reconcile(meta(), target, found.status,
                        f"the venue holds the order as {found.venue_order_id} ({found.status}); "
                        "its answer was never recorded", venue_order_id=found.venue_order_id)
        _save(store, order, result)
    placed = book.placed_at.get(order.id)
    for fill in venue.fills_since(placed - timedelta(minutes=5) if placed else None, order.product):
        if fill.venue_order_id == found.venue_order_id:
            _discover(store, book, order, fill, meta, result, "the venue filled it while no process recorded it")
    if not order.is_working or found.status in WORKING_AT_VENUE or found.status == "FILLED":
        if found.status == "FILLED" and order.is_working:
            result.notes.append(f"order {order.id}: FILLED at the venue but not every fill is listed yet")
        return
    status = {"CANCELLED": OrderStatus.CANCELLED, "EXPIRED": OrderStatus.EXPIRED}.get(found.status)
    if status is None:  # FAILED, UNKNOWN...
        status = OrderStatus.REJECTED if order.filled_quantity == 0 and order.status is not OrderStatus.PARTIALLY_FILLED \
            and OrderStatus.REJECTED in _allowed(order) else OrderStatus.CANCELLED
    order.reconcile(meta(), status, found.status,
                    f"the venue reports the order {found.status}{': ' + found.reason if found.reason else ''}")
    _save(store, order, result)


def _allowed(order: Order):
    from domain.order import TRANSITIONS

    return TRANSITIONS[order.status]


def _discover(store: TradingApplication, book: Book, order: Order, fill: VenueFill, meta: Callable[[], EventMeta],
              result: Reconciliation, how: str) -> None:
    if fill.fill_id in order.fill_ids or not order.is_working:
        return
    if order.filled_quantity + fill.quantity > order.quantity:
        result.notes.append(f"order {order.id}: venue fill {fill.fill_id} would overfill it; not recorded")
        return
    if order.status in (OrderStatus.PLACED, OrderStatus.SUBMITTED):
        order.reconcile(meta(), OrderStatus.ACCEPTED, "FILLED", "the venue holds the order; its answer was never recorded",
                        venue_order_id=fill.venue_order_id)
    order.discover_fill(meta(), fill_id=fill.fill_id, quantity=fill.quantity, price=fill.price, fee=fill.fee,
                        fee_currency=fill.fee_currency, liquidity=fill.liquidity,
                        reason=f"{how} (venue time {fill.occurred_at.isoformat()})")
    book.book_fill(order, fill.quantity, fill.price, fill.fee)
    store.record_in_order(order.collect_events())
    result.fills_discovered += 1


def _save(store: TradingApplication, order: Order, result: Reconciliation) -> None:
    events = order.collect_events()
    if events:
        store.record_in_order(events)
        result.orders_reconciled += 1


def close_abandoned_runs(store: TradingApplication, mode: RunMode, current: uuid.UUID,
                         meta: Callable[[], EventMeta], bot: str | None = None) -> list[uuid.UUID]:
    """Earlier runs of ``bot`` in ``mode`` that never recorded RunEnded (killed, crashed) end now, as ``abandoned``.

    One process runs a bot; a run of the bot that did not end is one whose process died. Other bots'
    runs on the same store are theirs: never ended here (runs from before bot ids belong to
    ``<mode>-<product>``, the default bot id).
    """
    ended = {e.event.originator_id for e in store.iter_log(topics=[get_topic(RunEnded)])}
    dangling = [e.event.originator_id for e in store.iter_log(topics=[get_topic(RunStarted)])
                if _of_bot(e.event, mode, bot) and e.event.originator_id not in ended
                and e.event.originator_id != current]
    for run_id in dangling:
        store.end_run(run_id, "abandoned", "its process ended without recording RunEnded; found by the next run", meta())
    return dangling


def open_positions(book: Book) -> dict[str, Position]:
    return {name: p for name, p in book.portfolio.positions.items() if p.is_held}


def protecting_entry(book: Book, product: str) -> Order | None:
    """The latest filled entry with a stop loss or take profit in the direction of the open position."""
    position = book.portfolio.position(product)
    if not position.is_held:
        return None
    side = OrderSide.BUY if position.quantity > 0 else OrderSide.SELL
    entries = [o for o in book.orders.values() if o.product == product and o.side is side and o.filled_quantity > 0
               and (o.stop_loss_price is not None or o.take_profit_price is not None)]
    return max(entries, key=lambda o: book.placed_at.get(o.id) or o.created_on, default=None)


__all__ = ["Book", "Reconciliation", "rebuild_book", "reconcile_live", "reconcile_paper", "open_positions",
           "protecting_entry", "VenueOrder"]
