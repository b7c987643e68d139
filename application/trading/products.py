"""Which spec a run trades a product by: the settings' table, what the log recorded, or an inference.

``product_spec_for`` is what a run (backtest, paper, live) calls when it is built:

1. a ``[products."P"]`` table in the settings (the operator said so) wins;
2. otherwise, for a paper or live run that passes the venue's lookup, the venue's answer (recorded
   in the log as ``ProductSpecRecorded``); otherwise the spec recorded in the log (by ``data fetch``,
   ``data product``, ``--bundled`` or an earlier run), so a replay or a later backtest trades by what
   was known;
3. otherwise, for offline files, the spec is inferred from the candles: the price increment is the
   finest price step the candles show, sizes step by 0.00000001, no minimums. It comes back with a
   warning that says so and how to give the real one.

``record_spec`` keeps a spec in the log (a no-op when it is the one already recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from application.ports import VenueError
from application.trading_app import TradingApplication
from domain.events import EventMeta
from domain.market import Candle
from domain.product import ProductListing, ProductSpec, parse_product_id, product_stream_id

INFERRED_BASE_INCREMENT = Decimal("0.00000001")
"""Size step assumed when nothing better is known (Coinbase's finest for most products)."""
COARSEST_INFERRED_QUOTE_INCREMENT = Decimal("0.01")


def recorded_spec(store: TradingApplication, product: str) -> ProductSpec | None:
    """The spec last recorded in the log for ``product``, or None."""
    try:
        listing: ProductListing = store.repository.get(product_stream_id(product))
    except AggregateNotFoundError:
        return None
    return listing.spec


def record_spec(store: TradingApplication, spec: ProductSpec, meta: EventMeta) -> bool:
    """Record ``spec`` in the log; False when the log already holds exactly this spec."""
    try:
        listing: ProductListing = store.repository.get(product_stream_id(spec.product_id))
    except AggregateNotFoundError:
        listing = ProductListing.first(spec, meta)
    else:
        if not listing.record(spec, meta):
            return False
    store.record_in_order(listing.collect_events())
    return True


def settings_spec(settings: Any, product: str) -> ProductSpec | None:
    """The ``[products."P"]`` table of the settings as a spec, or None when there is none."""
    table = (getattr(settings, "products", None) or {}).get(product)
    if table is None:
        return None
    return ProductSpec.for_product(product, table.quote_increment, table.base_increment, table.min_base_size,
                                   table.min_quote_funds, source="settings")


def inferred_spec(product: str, candles: Iterable[Candle]) -> ProductSpec:
    """A spec read off the candles' prices: the finest decimal place any open/high/low/close uses."""
    exponent = COARSEST_INFERRED_QUOTE_INCREMENT.as_tuple().exponent
    for candle in candles:
        for price in (candle.open, candle.high, candle.low, candle.close):
            digits = price.normalize().as_tuple().exponent
            if isinstance(digits, int) and digits < exponent:
                exponent = digits
    return ProductSpec.for_product(product, Decimal(1).scaleb(exponent), INFERRED_BASE_INCREMENT, source="inferred")


def product_spec_for(store: TradingApplication, settings: Any, product: str, candles: Iterable[Candle] = (),
                     venue: Callable[[str], ProductSpec] | None = None,
                     at: datetime | None = None) -> tuple[ProductSpec, str | None]:
    """The spec to trade ``product`` by, and a warning when it had to be inferred from ``candles``.

    Parameters
    ----------
    venue
        Paper and live runs pass the venue's product lookup (``CoinbaseClient.product_spec``): when no
        settings table names the product, the venue's answer is recorded in the log (at ``at``) and
        used; when the venue cannot be reached (``VenueError``) the log's spec or the inference serves,
        and the warning says the venue was not reached.

    Raises
    ------
    InvalidProduct
        When ``product`` is not a ``BASE-QUOTE`` id.
    """
    parse_product_id(product)
    if venue is not None and at is None:
        raise ValueError("product_spec_for: give `at` (the venue's time) with `venue`")
    spec = settings_spec(settings, product)
    if spec is not None:
        return spec, None
    unreached = ""
    if venue is not None:
        try:
            spec = venue(product)
        except VenueError as exc:
            unreached = f"the venue's product endpoint was not reached ({exc}); "
        else:
            record_spec(store, spec, EventMeta(at, actor="venue"))
            return spec, None
    spec = recorded_spec(store, product)
    if spec is not None:
        return spec, (unreached + "trading by the spec recorded earlier") if unreached else None
    spec = inferred_spec(product, candles)
    warning = (f"{unreached}no spec for {product} in the settings or the log: prices step by {spec.quote_increment:f} "
               f"{spec.quote_currency} (the finest the candles show), sizes by {spec.base_increment:f} "
               f"{spec.base_currency}, no minimums; for the venue's own run `tradecore data product {product}` "
               f"(Coinbase) or set [products.\"{product}\"] in the settings")
    return spec, warning
