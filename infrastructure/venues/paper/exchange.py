"""A simulated exchange for backtest and paper mode: deterministic fills from candles.

No clock and no randomness: times come from the arguments and candles, ids
from counters (``paper-order-1``, ``paper-1``, ...), so a replay of the same
candles and orders gives the same reports.

Products (``trade_by(spec)``, a ``domain.product.ProductSpec``): prices on the
product's ``quote_increment`` grid, sizes on its ``base_increment``, fees and
balances in its quote currency (USD, EUR, BTC, ...); an order below the
product's minimum size or funds is rejected naming the rule. A product traded
without a spec uses the constructor's increments (Coinbase BTC-USD style:
0.01 and 1e-8) and the quote currency of its id; an order priced below 100
price steps (0.0016 on a 0.01 grid) is rejected rather than filled on a grid
too coarse for it.
Balances are kept per currency (``deposit``, ``balance``): a BUY fill moves
quote to base, a SELL base to quote, fees leave the quote balance.

Precision (the accounting keeps whatever is reported):
- prices on the price grid. A market fill is the reference price moved by
  ``slippage_bps`` against the taker and rounded against the taker too (BUY
  up, SELL down); a limit fill is the limit price, which must already be on
  the grid.
- quantities on the size grid; a partial fill is rounded down to it; an order
  quantity off the grid is rejected.
- fees = price * quantity * bps / 10000, rounded UP to ``fee_increment``
  (1e-8 USD): the simulation never undercharges. Taker fees on market fills,
  maker fees on resting limit fills.

Resting LIMIT orders fill against later candles (a candle that started before
the order was accepted is not used): BUY when low <= limit, SELL when
high >= limit, at most ``fill_volume_fraction`` of the candle's volume each.
Brackets (stop loss / take profit of an entry) are armed when the entry fills
and checked against later candles; when both levels are touched by one candle
the stop wins. A trigger is reported (at the stop/take-profit price, even on a
gap through it) and disarmed; the loop sends the closing MARKET order itself.
``cancel_all`` cancels resting orders but keeps brackets: they protect open
positions. The exchange keeps its own book of positions (from its fills) to
refuse naked shorts; it does not check cash (risk sizes the orders).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_UP, Decimal

from application.ports import ExecutionReport, OrderRequest, ReportKind
from domain.brackets import Bracket, BracketBook, bracket_after_fill
from domain.market import Candle
from domain.order import Liquidity, OrderSide, OrderType
from domain.product import InvalidProduct, ProductSpec, check_minimums, parse_product_id

__all__ = ["Bracket", "PaperExchange"]

ZERO = Decimal(0)
BPS = Decimal(10000)


@dataclass
class _RestingOrder:
    request: OrderRequest
    venue_order_id: str
    accepted_at: datetime
    remaining: Decimal


class PaperExchange:
    """``ExchangeGateway`` that fills from reference prices and candles, deterministically."""

    def __init__(
        self,
        *,
        taker_fee_bps: Decimal = Decimal(60),
        maker_fee_bps: Decimal = Decimal(40),
        slippage_bps: Decimal = Decimal(5),
        fill_volume_fraction: Decimal = Decimal("0.1"),
        allow_shorts: bool = False,
        quote_currency: str = "USD",
        price_increment: Decimal = Decimal("0.01"),
        quantity_increment: Decimal = Decimal("0.00000001"),
        fee_increment: Decimal = Decimal("0.00000001"),
        id_prefix: str = "paper",
    ):
        for name, value in (
            ("taker_fee_bps", taker_fee_bps),
            ("maker_fee_bps", maker_fee_bps),
            ("slippage_bps", slippage_bps),
            ("fill_volume_fraction", fill_volume_fraction),
        ):
            if not isinstance(value, (Decimal, int)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}={value!r}: must be a Decimal >= 0")
        if not 0 < fill_volume_fraction <= 1:
            raise ValueError(f"fill_volume_fraction={fill_volume_fraction!r}: must be in (0, 1]")
        self.taker_fee_bps = Decimal(taker_fee_bps)
        self.maker_fee_bps = Decimal(maker_fee_bps)
        self.slippage_bps = Decimal(slippage_bps)
        self.fill_volume_fraction = Decimal(fill_volume_fraction)
        self.allow_shorts = allow_shorts
        self.quote_currency = quote_currency
        self.price_increment = price_increment
        self.quantity_increment = quantity_increment
        self.fee_increment = fee_increment
        self.id_prefix = id_prefix
        self.fill_count = 0
        self.order_count = 0
        self._resting: dict[uuid.UUID, _RestingOrder] = {}
        self._seen: set[uuid.UUID] = set()
        self._positions: dict[str, Decimal] = {}
        self._brackets = BracketBook()
        self._specs: dict[str, ProductSpec] = {}
        self.balances: dict[str, Decimal] = {}

    # --- products and balances ------------------------------------------------------

    def trade_by(self, spec: ProductSpec) -> None:
        """Round, validate and account ``spec.product_id`` by its spec (increments, minimums, currencies)."""
        self._specs[spec.product_id] = spec

    def spec(self, product: str) -> ProductSpec | None:
        return self._specs.get(product)

    def deposit(self, currency: str, amount: Decimal) -> None:
        """Funds in one currency (a backtest's or paper run's starting balance)."""
        if amount < 0:
            raise ValueError(f"deposit {amount} {currency}: must be >= 0")
        self.balances[currency] = self.balance(currency) + amount

    def balance(self, currency: str) -> Decimal:
        return self.balances.get(currency, ZERO)

    def _grid(self, product: str) -> tuple[Decimal, Decimal, str]:
        # (price step, size step, quote currency) of a product
        spec = self._specs.get(product)
        if spec is not None:
            return spec.quote_increment, spec.base_increment, spec.quote_currency
        try:
            quote = parse_product_id(product)[1]
        except InvalidProduct:
            quote = self.quote_currency
        return self.price_increment, self.quantity_increment, quote

    # --- the ExchangeGateway protocol -------------------------------------------

    def submit(self, request: OrderRequest, reference_price: Decimal, at: datetime) -> list[ExecutionReport]:
        """Accept (market orders fill at once, limit orders rest) or reject with the reason."""
        if request.order_id in self._seen:
            return []  # a resubmission of an order already handled
        reason = self._refusal(request, reference_price)
        if reason:
            return [ExecutionReport(ReportKind.REJECTED, request.order_id, at, reason=reason)]
        self._seen.add(request.order_id)
        self.order_count += 1
        venue_order_id = f"{self.id_prefix}-order-{self.order_count}"
        reports = [ExecutionReport(ReportKind.ACCEPTED, request.order_id, at, venue_order_id=venue_order_id)]
        if request.order_type is OrderType.MARKET:
            price = self._slipped(request.side, reference_price, self._grid(request.product)[0])
            reports.append(
                self._fill(request, venue_order_id, request.quantity, price, self.taker_fee_bps, Liquidity.TAKER, at)
            )
        else:
            self._resting[request.order_id] = _RestingOrder(request, venue_order_id, at, request.quantity)
        return reports

    def on_candle(self, candle: Candle) -> list[ExecutionReport]:
        """Fill resting limit orders on the candle, then check brackets; fills first."""
        at = candle.end
        reports: list[ExecutionReport] = []
        for order_id, order in list(self._resting.items()):
            request = order.request
            if request.product != candle.product or candle.start < order.accepted_at:
                continue
            limit = request.limit_price
            touched = candle.low <= limit if request.side is OrderSide.BUY else candle.high >= limit
            if not touched:
                continue
            available = (candle.volume * self.fill_volume_fraction).quantize(self._grid(request.product)[1], ROUND_DOWN)
            quantity = min(order.remaining, available)
            if quantity <= 0:
                continue
            order.remaining -= quantity
            if order.remaining == 0:
                del self._resting[order_id]
            reports.append(
                self._fill(request, order.venue_order_id, quantity, limit, self.maker_fee_bps, Liquidity.MAKER, at)
            )
        trigger = self._check_bracket(candle)
        if trigger is not None:
            reports.append(trigger)
        return reports

    def cancel(self, order_id: uuid.UUID, at: datetime) -> list[ExecutionReport]:
        """Cancel a resting order; the unfilled rest stays unfilled. [] if not open."""
        order = self._resting.pop(order_id, None)
        if order is None:
            return []
        return [self._cancelled(order, at, "cancelled on request")]

    def cancel_all(self, at: datetime) -> list[ExecutionReport]:
        """Cancel every resting order, oldest first (brackets stay armed)."""
        orders, self._resting = list(self._resting.values()), {}
        return [self._cancelled(order, at, "cancelled: cancel all") for order in orders]

    # --- the paper book ----------------------------------------------------------

    def position(self, product: str) -> Decimal:
        """The exchange's own signed position in a product, from its fills."""
        return self._positions.get(product, ZERO)

    def bracket(self, product: str) -> Bracket | None:
        return self._brackets.get(product)

    def idle(self, product: str) -> bool:
        """True when a candle of ``product`` can change nothing here: no resting order, no bracket armed
        (``on_candle`` would report nothing; a backtest then skips asking it)."""
        return not self._resting and self._brackets.get(product) is None

    @property
    def open_order_ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(self._resting)

    def arm(
        self,
        product: str,
        order_id: uuid.UUID,
        at: datetime,
        *,
        stop_loss_price: Decimal | None = None,
        take_profit_price: Decimal | None = None,
    ) -> Bracket:
        """Arm (or replace) the bracket on an open position, e.g. after a paper restart."""
        quantity = self.position(product)
        if quantity == 0:
            raise ValueError(f"cannot arm a bracket on {product}: no position")
        return self._brackets.arm(Bracket(product, order_id, quantity > 0, stop_loss_price, take_profit_price, at))

    def disarm(self, product: str) -> Bracket | None:
        """Remove the product's bracket (its position was closed by a CLOSE decision)."""
        return self._brackets.disarm(product)

    def restore_position(self, product: str, quantity: Decimal) -> None:
        """Set the paper book's position (paper mode restarting from the event log)."""
        self._positions[product] = quantity

    # --- internals -----------------------------------------------------------------

    def _refusal(self, request: OrderRequest, reference_price: Decimal) -> str:
        quantity = request.quantity
        price_step, size_step, _ = self._grid(request.product)
        if quantity <= 0:
            return f"quantity {quantity} must be > 0"
        if quantity != quantity.quantize(size_step, ROUND_DOWN):
            return f"quantity {quantity} is not a multiple of {size_step}"
        if request.order_type is OrderType.LIMIT:
            limit = request.limit_price
            if limit is None:
                return "a LIMIT order needs a limit price"
            if limit <= 0 or limit != limit.quantize(price_step, ROUND_DOWN):
                return f"limit price {limit} must be > 0 and a multiple of {price_step}"
            entry = limit
        else:
            if request.limit_price is not None:
                return f"a MARKET order takes no limit price (got {request.limit_price})"
            if reference_price <= 0:
                return f"reference price {reference_price} must be > 0"
            entry = reference_price
        spec = self._specs.get(request.product)
        if spec is not None:
            below = check_minimums(quantity, entry, spec)
            if below:
                return f"below the product's minimum: {below}"
        elif entry < price_step * 100:  # the default grid would move the price by 1% or more
            return (f"no product spec for {request.product}: its price {entry} is too fine for the default price "
                    f"step {price_step}; trade it by its spec (trade_by)")
        if request.side is OrderSide.SELL and not self.allow_shorts:
            held = self.position(request.product)
            reserved = sum(
                (o.remaining for o in self._resting.values()
                 if o.request.product == request.product and o.request.side is OrderSide.SELL),
                ZERO,
            )
            if quantity > held - reserved:
                return (
                    f"SELL {quantity} {request.product} would open a short: position {held}, "
                    f"resting sells {reserved}, available {held - reserved}; shorts are disabled"
                )
        return self._bracket_refusal(request, entry)

    @staticmethod
    def _bracket_refusal(request: OrderRequest, entry: Decimal) -> str:
        stop, take = request.stop_loss_price, request.take_profit_price
        buy = request.side is OrderSide.BUY
        if stop is not None and (stop <= 0 or (stop >= entry if buy else stop <= entry)):
            return f"stop loss {stop} must be {'below' if buy else 'above'} the entry price {entry}"
        if take is not None and (take <= 0 or (take <= entry if buy else take >= entry)):
            return f"take profit {take} must be {'above' if buy else 'below'} the entry price {entry}"
        return ""

    def _slipped(self, side: OrderSide, reference: Decimal, price_step: Decimal) -> Decimal:
        if side is OrderSide.BUY:
            return (reference * (BPS + self.slippage_bps) / BPS).quantize(price_step, ROUND_CEILING)
        return (reference * (BPS - self.slippage_bps) / BPS).quantize(price_step, ROUND_FLOOR)

    def _fill(
        self,
        request: OrderRequest,
        venue_order_id: str,
        quantity: Decimal,
        price: Decimal,
        fee_bps: Decimal,
        liquidity: Liquidity,
        at: datetime,
    ) -> ExecutionReport:
        fee = (quantity * price * fee_bps / BPS).quantize(self.fee_increment, ROUND_UP)
        quote = self._grid(request.product)[2]
        self.fill_count += 1
        self._book(request, quantity, at)
        self._settle(request, quantity, price, fee, quote)
        return ExecutionReport(
            ReportKind.FILL,
            request.order_id,
            at,
            venue_order_id=venue_order_id,
            fill_id=f"{self.id_prefix}-{self.fill_count}",
            quantity=quantity,
            price=price,
            fee=fee,
            fee_currency=quote,
            liquidity=liquidity,
        )

    def _settle(self, request: OrderRequest, quantity: Decimal, price: Decimal, fee: Decimal, quote: str) -> None:
        # A fill moves funds between the product's two currencies; the fee leaves the quote balance.
        try:
            base = parse_product_id(request.product)[0]
        except InvalidProduct:
            base = request.product.split("-")[0]
        notional = quantity * price
        signed = 1 if request.side is OrderSide.BUY else -1
        self.balances[base] = self.balance(base) + signed * quantity
        self.balances[quote] = self.balance(quote) - signed * notional - fee

    def _book(self, request: OrderRequest, quantity: Decimal, at: datetime) -> None:
        # Move the paper position; keep the bracket consistent with it.
        product = request.product
        before = self.position(product)
        after = before + (quantity if request.side is OrderSide.BUY else -quantity)
        self._positions[product] = after
        self._brackets.replace(product, bracket_after_fill(
            self._brackets.get(product), product=product, order_id=request.order_id, side=request.side,
            before=before, after=after, stop_loss_price=request.stop_loss_price,
            take_profit_price=request.take_profit_price, at=at,
        ))

    def _check_bracket(self, candle: Candle) -> ExecutionReport | None:
        fired = self._brackets.fire(candle)
        if fired is None:
            return None
        bracket, hit = fired
        both = " (take profit also touched; the stop wins)" if hit.both_touched else ""
        quantity = abs(self.position(candle.product))
        return ExecutionReport(
            ReportKind.STOP_TRIGGERED if hit.is_stop_loss else ReportKind.TAKE_PROFIT_TRIGGERED,
            bracket.order_id,
            candle.end,
            quantity=quantity,
            trigger_price=hit.price,
            reason=(
                f"{hit.level.value} {hit.price} touched by the {candle.granularity} candle of "
                f"{candle.start.isoformat()} (low {candle.low}, high {candle.high}){both}; "
                f"close {quantity} {candle.product}"
            ),
        )

    def _cancelled(self, order: _RestingOrder, at: datetime, why: str) -> ExecutionReport:
        request = order.request
        return ExecutionReport(
            ReportKind.CANCELLED,
            request.order_id,
            at,
            venue_order_id=order.venue_order_id,
            quantity=order.remaining,
            reason=f"{why}; {order.remaining} of {request.quantity} unfilled",
        )
