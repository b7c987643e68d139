"""Live execution on Coinbase: the ``ExchangeGateway`` and ``VenueAccount`` of real orders.

- Every order's client_order_id is derived from our order id (domain/order.py), so a
  retry after a 5xx or a restart can never create a second order: the venue answers a
  repeated client_order_id with the order it already has.
- ``submit`` sends the order (retried on 5xx, 429, timeouts) and then polls its fills
  for up to ``fill_wait`` seconds, so a market order usually comes back filled. A fill
  that arrives later is picked up by ``poll`` (the run calls it on a timer) or the next
  ``on_candle``; a fill reported twice is reported once.
- An order whose fate is unknown (the venue never answered) is neither accepted nor
  rejected: it stays SUBMITTED and is looked up by client_order_id on the next poll.
- Stop losses and take profits are held here and checked on closed candles by the
  domain rules the paper exchange uses too (domain/brackets.py); a trigger is reported and
  the loop sends the closing order.
- ``cancel_all`` (the emergency stop) cancels every open order at the venue, ours or not.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from application.ports import (
    ExecutionReport,
    OrderRequest,
    ReportKind,
    VenueClientError,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRateLimited,
)
from domain.brackets import Bracket, BracketBook, bracket_after_fill
from domain.market import Candle
from domain.order import OrderSide, OrderType
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.schemas import (
    OPEN_STATUSES,
    create_order_failure,
    order_id_of,
    parse_balances,
    parse_fill,
    parse_order,
)

log = logging.getLogger("tradecore.coinbase.execution")
ZERO = Decimal(0)
CANCEL_BATCH = 100


@dataclass
class _Tracked:
    request: OrderRequest
    placed_at: datetime
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    fill_ids: set[str] = field(default_factory=set)
    accepted_reported: bool = False
    done: bool = False


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CoinbaseGateway:
    """Real orders on Coinbase Advanced Trade (see the module doc)."""

    def __init__(self, client: CoinbaseClient, *, fill_wait: float = 2.0, poll_every: float = 0.2,
                 quote_currency: str = "USD"):
        if not client.authenticated:
            raise VenueClientError("live execution needs API keys (EXCHANGE__API_KEY and EXCHANGE__API_SECRET)")
        self.client = client
        self.fill_wait = fill_wait
        self.poll_every = poll_every
        self.quote_currency = quote_currency
        self._orders: dict[uuid.UUID, _Tracked] = {}
        self._brackets = BracketBook()
        self._positions: dict[str, Decimal] = {}

    # --- the ExchangeGateway protocol ----------------------------------------------------------

    def submit(self, request: OrderRequest, reference_price: Decimal, at: datetime) -> list[ExecutionReport]:
        """Send the order; ACCEPTED (and fills seen within ``fill_wait``), REJECTED, or [] if unknown."""
        tracked = self._orders.get(request.order_id)
        if tracked is not None:
            return []  # already sent: its fate comes through poll()
        tracked = self._orders[request.order_id] = _Tracked(request, at)
        try:
            response = self.client.create_order(request.client_order_id, request.product, request.side.value,
                                                self._configuration(request))
        except VenueRateLimited as exc:  # still limited after waiting as asked: the venue did not take it
            tracked.done = True
            return [ExecutionReport(ReportKind.REJECTED, request.order_id, at, reason=f"rate limited: {exc}")]
        except VenueClientError as exc:
            tracked.done = True
            return [ExecutionReport(ReportKind.REJECTED, request.order_id, at, reason=str(exc))]
        except VenueError as exc:
            log.error("order %s: no answer from the venue (%s); it stays SUBMITTED until the venue says",
                      request.client_order_id, exc)
            return []
        if not response.get("success"):
            tracked.done = True
            reason = create_order_failure(response)
            return [ExecutionReport(ReportKind.REJECTED, request.order_id, at, reason=f"venue refused: {reason}")]
        success = response.get("success_response") or {}
        tracked.venue_order_id = str(success.get("order_id") or response.get("order_id") or "")
        tracked.accepted_reported = True
        reports = [ExecutionReport(ReportKind.ACCEPTED, request.order_id, at, venue_order_id=tracked.venue_order_id)]
        deadline = time.monotonic() + (self.fill_wait if request.order_type is OrderType.MARKET else 0)
        while True:
            try:
                reports += self._refresh(tracked, at)
            except VenueError as exc:
                log.warning("order %s: fills not readable yet (%s)", request.client_order_id, exc)
            if tracked.done or time.monotonic() >= deadline:
                return reports
            time.sleep(self.poll_every)

    def on_candle(self, candle: Candle) -> list[ExecutionReport]:
        """Fills and status changes since the last look, then the stop loss / take profit check."""
        reports = self.poll(candle.end)
        trigger = self._check_bracket(candle)
        if trigger is not None:
            reports.append(trigger)
        return reports

    def poll(self, at: datetime) -> list[ExecutionReport]:
        """What happened to our working orders since the last look (venue errors: logged, retried next time)."""
        reports: list[ExecutionReport] = []
        for tracked in list(self._orders.values()):
            if tracked.done:
                continue
            try:
                reports += self._refresh(tracked, at)
            except VenueError as exc:
                log.warning("order %s: cannot read its state (%s)", tracked.request.client_order_id, exc)
        return reports

    def cancel(self, order_id: uuid.UUID, at: datetime) -> list[ExecutionReport]:
        tracked = self._orders.get(order_id)
        if tracked is None or tracked.done:
            return []
        reports = self._refresh(tracked, at)
        if tracked.done or not tracked.venue_order_id:
            return reports
        self.client.cancel_orders([tracked.venue_order_id])
        return reports + self._refresh(tracked, at, cancel_reason="cancelled on request")

    def cancel_all(self, at: datetime) -> list[ExecutionReport]:
        """Cancel every open order this bot placed (tracked here: placed or adopted on restart); report what happened.

        Orders of other bots (or people) on the same account are never touched: several bots share one."""
        open_ids = [o.venue_order_id for o in self.open_orders() if o.order_id is not None and o.order_id in self._orders]
        for i in range(0, len(open_ids), CANCEL_BATCH):
            for result in self.client.cancel_orders(open_ids[i:i + CANCEL_BATCH]):
                if not result.get("success"):
                    log.warning("cancel of venue order %s refused: %s", result.get("order_id"),
                                result.get("failure_reason"))
        reports: list[ExecutionReport] = []
        for tracked in list(self._orders.values()):
            if not tracked.done:
                reports += self._refresh(tracked, at, cancel_reason="cancelled: cancel all")
        log.warning("cancel all: %d open order(s) of ours at the venue cancelled", len(open_ids))
        return reports

    def disarm(self, product: str) -> Bracket | None:
        return self._brackets.disarm(product)

    # --- what the runner restores after a restart ----------------------------------------------

    def adopt(self, request: OrderRequest, placed_at: datetime, venue_order_id: str | None,
              fill_ids: set[str], filled: Decimal) -> None:
        """Track a working order recorded before this process started."""
        self._orders[request.order_id] = _Tracked(request, placed_at, venue_order_id or None, filled, set(fill_ids),
                                                  accepted_reported=bool(venue_order_id))

    def restore_position(self, product: str, quantity: Decimal) -> None:
        self._positions[product] = quantity

    def arm(self, product: str, order_id: uuid.UUID, at: datetime, *, long: bool,
            stop_loss_price: Decimal | None, take_profit_price: Decimal | None) -> Bracket:
        return self._brackets.arm(Bracket(product, order_id, long, stop_loss_price, take_profit_price, at))

    def bracket(self, product: str) -> Bracket | None:
        return self._brackets.get(product)

    # --- the VenueAccount protocol -------------------------------------------------------------

    def open_orders(self, product: str | None = None) -> list[VenueOrder]:
        filters: dict[str, Any] = {"order_status": ["OPEN"]}
        if product:
            filters["product_ids"] = [product]
        return [parse_order(o) for o in self.client.list_orders(**filters)]

    def find_order(self, client_order_id: str, venue_order_id: str | None = None,
                   placed_after: datetime | None = None) -> VenueOrder | None:
        if venue_order_id:
            return parse_order(self.client.get_order(venue_order_id))
        filters: dict[str, Any] = {}
        if placed_after is not None:
            filters["start_date"] = _iso(placed_after - timedelta(minutes=5))
        for payload in self.client.list_orders(**filters):
            if payload.get("client_order_id") == client_order_id:
                return parse_order(payload)
        return None

    def fills_since(self, since: datetime | None, product: str | None = None) -> list[VenueFill]:
        filters: dict[str, Any] = {}
        if since is not None:
            filters["start_sequence_timestamp"] = _iso(since)
        if product:
            filters["product_ids"] = [product]
        fills = {f.fill_id: f for f in (parse_fill(p, self.quote_currency) for p in self.client.list_fills(**filters))}
        return sorted(fills.values(), key=lambda f: (f.occurred_at, f.fill_id))

    def balances(self) -> dict[str, Decimal]:
        return parse_balances(self.client.accounts())

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _configuration(request: OrderRequest) -> dict[str, Any]:
        size = format(request.quantity.normalize(), "f")
        if request.order_type is OrderType.MARKET:
            return {"market_market_ioc": {"base_size": size}}
        price = format(request.limit_price.normalize(), "f")
        return {"limit_limit_gtc": {"base_size": size, "limit_price": price, "post_only": False}}

    def _refresh(self, tracked: _Tracked, at: datetime, cancel_reason: str = "") -> list[ExecutionReport]:
        """The order's new fills, then its end (cancelled, expired, failed) if the venue says so."""
        request = tracked.request
        reports: list[ExecutionReport] = []
        if not tracked.venue_order_id:
            found = self.find_order(request.client_order_id, placed_after=tracked.placed_at)
            if found is None:
                return []
            tracked.venue_order_id = found.venue_order_id
        if not tracked.accepted_reported:
            tracked.accepted_reported = True
            reports.append(ExecutionReport(ReportKind.ACCEPTED, request.order_id, at,
                                           venue_order_id=tracked.venue_order_id))
        for payload in self.client.list_fills(order_ids=[tracked.venue_order_id]):
            fill = parse_fill(payload, self.quote_currency)
            if fill.fill_id in tracked.fill_ids:
                continue  # reported before (the venue may list a fill twice)
            if tracked.filled + fill.quantity > request.quantity:
                log.error("order %s: venue fill %s of %s would overfill %s; ignored", request.client_order_id,
                          fill.fill_id, fill.quantity, request.quantity)
                continue
            tracked.fill_ids.add(fill.fill_id)
            tracked.filled += fill.quantity
            reports.append(ExecutionReport(
                ReportKind.FILL, request.order_id, fill.occurred_at, venue_order_id=tracked.venue_order_id,
                fill_id=fill.fill_id, quantity=fill.quantity, price=fill.price, fee=fill.fee,
                fee_currency=fill.fee_currency, liquidity=fill.liquidity,
            ))
            self._book(request, fill.quantity, fill.occurred_at)
        if tracked.filled >= request.quantity:
            tracked.done = True
            return reports
        order = parse_order(self.client.get_order(tracked.venue_order_id))
        if order.status in OPEN_STATUSES:
            return reports
        remaining = request.quantity - tracked.filled
        why = order.reason or cancel_reason
        if order.status == "CANCELLED":
            reports.append(ExecutionReport(ReportKind.CANCELLED, request.order_id, at,
                                           venue_order_id=tracked.venue_order_id, quantity=remaining,
                                           reason=f"{why or 'cancelled at the venue'}; {remaining} of {request.quantity} unfilled"))
            tracked.done = True
        elif order.status == "EXPIRED":
            reports.append(ExecutionReport(ReportKind.EXPIRED, request.order_id, at,
                                           venue_order_id=tracked.venue_order_id, reason=why or "expired at the venue"))
            tracked.done = True
        elif order.status == "FAILED":
            if tracked.filled == 0:
                reports.append(ExecutionReport(ReportKind.REJECTED, request.order_id, at,
                                               reason=f"venue failed the order: {why or 'no reason given'}"))
            else:
                reports.append(ExecutionReport(ReportKind.CANCELLED, request.order_id, at,
                                               reason=f"venue failed the rest of the order: {why}"))
            tracked.done = True
        # FILLED with fills not listed yet: the next poll picks them up.
        return reports

    def _book(self, request: OrderRequest, quantity: Decimal, at: datetime) -> None:
        # Our position by product (from our fills) keeps the stop loss / take profit consistent.
        product = request.product
        before = self._positions.get(product, ZERO)
        after = before + (quantity if request.side is OrderSide.BUY else -quantity)
        self._positions[product] = after
        self._brackets.replace(product, bracket_after_fill(
            self._brackets.get(product), product=product, order_id=request.order_id, side=request.side,
            before=before, after=after, stop_loss_price=request.stop_loss_price,
            take_profit_price=request.take_profit_price, at=at))

    def _check_bracket(self, candle: Candle) -> ExecutionReport | None:
        fired = self._brackets.fire(candle)
        if fired is None:
            return None
        bracket, hit = fired
        kind = ReportKind.STOP_TRIGGERED if hit.is_stop_loss else ReportKind.TAKE_PROFIT_TRIGGERED
        quantity = abs(self._positions.get(candle.product, ZERO))
        return ExecutionReport(kind, bracket.order_id, candle.end, quantity=quantity, trigger_price=hit.price,
                               reason=f"{hit.level.value} {hit.price} touched by the candle of "
                                      f"{candle.start.isoformat()} (low {candle.low}, high {candle.high}); "
                                      f"close {quantity} {candle.product}")


def order_id_from_client(client_order_id: str) -> uuid.UUID | None:
    """Our order id from a client_order_id (None when it is not one of ours)."""
    return order_id_of(client_order_id)
