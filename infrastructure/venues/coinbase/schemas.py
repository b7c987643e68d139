"""Venue payloads (plain dicts from the SDK's ``to_dict()``) parsed into our types.

Every number arrives as a string; a missing or malformed field raises
``VenueDataError`` naming the field and the value ("corrupt data is worse
than no data").
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from application.ports import VenueDataError, VenueFill, VenueOrder
from domain.market import Candle
from domain.order import Liquidity, OrderSide
from domain.product import InvalidProduct, ProductSpec

GRANULARITY_NAMES: dict[str, str] = {
    "1m": "ONE_MINUTE",
    "5m": "FIVE_MINUTE",
    "15m": "FIFTEEN_MINUTE",
    "30m": "THIRTY_MINUTE",
    "1h": "ONE_HOUR",
    "2h": "TWO_HOUR",
    "6h": "SIX_HOUR",
    "1d": "ONE_DAY",
}
"""Our granularity names -> the venue's."""

CLIENT_ORDER_PREFIX = "tc-"
OPEN_STATUSES = frozenset({"OPEN", "PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"})


def venue_granularity(granularity: str) -> str:
    try:
        return GRANULARITY_NAMES[granularity]
    except KeyError:
        raise VenueDataError(f"granularity {granularity!r} has no Coinbase equivalent "
                             f"(use one of {', '.join(GRANULARITY_NAMES)})") from None


def decimal_field(payload: dict[str, Any], name: str, where: str, *, required: bool = True,
                  minimum: Decimal | None = Decimal(0)) -> Decimal | None:
    value = payload.get(name)
    if value in (None, ""):
        if required:
            raise VenueDataError(f"{where}: field {name!r} is missing")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise VenueDataError(f"{where}: field {name}={value!r} is not a number") from None
    if not number.is_finite() or (minimum is not None and number < minimum):
        raise VenueDataError(f"{where}: field {name}={value!r} is out of range")
    return number


def time_field(payload: dict[str, Any], name: str, where: str) -> datetime:
    value = payload.get(name)
    if value in (None, ""):
        raise VenueDataError(f"{where}: field {name!r} is missing")
    return parse_time(value, f"{where}: field {name}")


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 time (nanoseconds allowed) or epoch seconds, as UTC."""
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), timezone.utc)
        text = text.replace("Z", "+00:00")
        if "." in text:  # Python takes at most 6 fractional digits
            head, _, rest = text.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            zone = rest[len(digits):]
            text = f"{head}.{digits[:6].ljust(6, '0')}{zone or '+00:00'}"
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise VenueDataError(f"{where}={value!r} is not a time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def parse_candle(payload: dict[str, Any], product: str, granularity: str) -> Candle:
    """One venue candle (REST or WebSocket: start in epoch seconds, OHLCV as strings)."""
    where = f"{product} candle {payload.get('start')!r}"
    start = time_field(payload, "start", where)
    values = {name: decimal_field(payload, name, where) for name in ("open", "high", "low", "close", "volume")}
    for name in ("open", "high", "low", "close"):
        if values[name] <= 0:
            raise VenueDataError(f"{where}: field {name}={payload.get(name)!r} must be > 0")
    if values["high"] < max(values["open"], values["close"], values["low"]) or values["low"] > min(values["open"], values["close"]):
        raise VenueDataError(f"{where}: high/low {values['high']}/{values['low']} do not bound open/close "
                             f"{values['open']}/{values['close']}")
    return Candle(product, granularity, start, values["open"], values["high"], values["low"], values["close"],
                  values["volume"])


def parse_product_spec(payload: dict[str, Any], product: str) -> ProductSpec:
    """A product endpoint's answer as a spec: the price step (``price_increment``, else
    ``quote_increment``), the size step, and the minimum size and funds."""
    where = f"product {product}"
    if payload.get("product_id") not in (None, product):
        raise VenueDataError(f"{where}: the answer is for {payload.get('product_id')!r}")
    step = decimal_field(payload, "price_increment", where, required=False) or \
        decimal_field(payload, "quote_increment", where)
    base_step = decimal_field(payload, "base_increment", where)
    if step <= 0 or base_step <= 0:
        raise VenueDataError(f"{where}: increments {step}/{base_step} must be > 0")
    try:
        return ProductSpec.for_product(
            product, step, base_step,
            decimal_field(payload, "base_min_size", where, required=False) or Decimal(0),
            decimal_field(payload, "quote_min_size", where, required=False) or Decimal(0),
            source="venue",
        )
    except InvalidProduct as exc:
        raise VenueDataError(f"{where}: {exc}") from None


def order_id_of(client_order_id: str | None) -> uuid.UUID | None:
    """Our order id from a client_order_id we derived (``tc-<bot>-<hex>``, or ``tc-<hex>`` before bots had
    ids); None for anyone else's."""
    if not client_order_id or not client_order_id.startswith(CLIENT_ORDER_PREFIX):
        return None
    try:
        return uuid.UUID(hex=client_order_id.rsplit("-", 1)[-1])
    except ValueError:
        return None


def _side(payload: dict[str, Any], where: str) -> OrderSide:
    value = str(payload.get("side", "")).upper()
    try:
        return OrderSide(value)
    except ValueError:
        raise VenueDataError(f"{where}: field side={payload.get('side')!r} is not BUY or SELL") from None


def parse_order(payload: dict[str, Any]) -> VenueOrder:
    venue_id = payload.get("order_id")
    if not venue_id:
        raise VenueDataError(f"order: field 'order_id' is missing in {sorted(payload)}")
    where = f"order {venue_id}"
    client_id = str(payload.get("client_order_id") or "")
    reason = " ".join(str(payload.get(k)) for k in ("reject_reason", "reject_message", "cancel_message")
                      if payload.get(k) not in (None, "", "REJECT_REASON_UNSPECIFIED")).strip()
    return VenueOrder(
        venue_order_id=str(venue_id),
        client_order_id=client_id,
        product=str(payload.get("product_id") or ""),
        side=_side(payload, where),
        status=str(payload.get("status") or "UNKNOWN").upper(),
        filled_quantity=decimal_field(payload, "filled_size", where, required=False) or Decimal(0),
        order_id=order_id_of(client_id),
        reason=reason,
    )


def parse_fill(payload: dict[str, Any], quote_currency: str = "USD") -> VenueFill:
    fill_id = payload.get("trade_id") or payload.get("entry_id")
    if not fill_id:
        raise VenueDataError(f"fill: field 'trade_id' is missing in {sorted(payload)}")
    where = f"fill {fill_id}"
    liquidity = str(payload.get("liquidity_indicator") or "").upper()
    product = str(payload.get("product_id") or "")
    quote = product.split("-")[-1] if "-" in product else quote_currency
    quantity = decimal_field(payload, "size", where)
    if payload.get("size_in_quote") in (True, "true", "True"):
        price = decimal_field(payload, "price", where)
        quantity = quantity / price
    return VenueFill(
        fill_id=str(fill_id),
        venue_order_id=str(payload.get("order_id") or ""),
        product=product,
        side=_side(payload, where),
        quantity=quantity,
        price=decimal_field(payload, "price", where),
        fee=decimal_field(payload, "commission", where, required=False) or Decimal(0),
        liquidity=Liquidity.MAKER if liquidity == "MAKER" else Liquidity.TAKER,
        occurred_at=time_field(payload, "trade_time", where),
        fee_currency=quote,
    )


def parse_balances(accounts: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Currency -> available + hold, summed over the accounts listed."""
    totals: dict[str, Decimal] = {}
    for account in accounts:
        currency = str(account.get("currency") or "")
        if not currency:
            raise VenueDataError(f"account {account.get('uuid')!r}: field 'currency' is missing")
        where = f"account {currency}"
        total = Decimal(0)
        for name in ("available_balance", "hold"):
            amount = account.get(name) or {}
            value = decimal_field(amount, "value", f"{where} {name}", required=False, minimum=None)
            total += value or Decimal(0)
        totals[currency] = totals.get(currency, Decimal(0)) + total
    return totals


def create_order_failure(response: dict[str, Any]) -> str:
    """Why the venue refused an order (``success: false``), in its own words."""
    error = response.get("error_response") or {}
    parts = [str(error.get(k)) for k in ("error", "message", "error_details", "preview_failure_reason",
                                         "new_order_failure_reason") if error.get(k)]
    if response.get("failure_reason") and not parts:
        parts.append(str(response["failure_reason"]))
    return "; ".join(dict.fromkeys(parts)) or "the venue refused the order without a reason"
