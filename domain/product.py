"""A product as the venue lists it: currencies, increments, minimums; and the rounding rules.

``ProductSpec`` says what a price and a size of one product may be: prices are multiples of the
``quote_increment``, sizes multiples of the ``base_increment``, an order is at least
``min_base_size`` of the base currency and ``min_quote_funds`` of the quote currency. Real venues
list products quoted in USD, USDC, EUR, GBP and BTC, priced from 100,000 down to 0.00001: nothing
here assumes cents or dollars.

Rounding always goes the safe way, and the caller says which way that is:

- a protective price is rounded toward the entry, so the protection is never looser than asked:
  a long's stop-loss (below the entry) is rounded UP, a long's take-profit (above it) DOWN; a
  short's stop-loss (above the entry) DOWN, a short's take-profit (below it) UP
  (``protective_rounding``);
- a limit buy is rounded DOWN (never pay more than asked), a limit sell UP (never sell for less)
  (``limit_rounding``);
- a quantity is rounded DOWN to the base increment (never more than the funds or the position).

``ProductSpecRecorded`` keeps in the log what was known of a product (from the venue, or from the
settings), so replays and later backtests use the same spec. Nothing here reads a clock, a file or
the network.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Literal

from pydantic import model_validator

from domain.aggregate import Aggregate
from domain.events import EVENT_NAMESPACE, DomainError, DomainEvent, EventMeta, FieldProblem, NonNegative, Positive

__all__ = [
    "ROUND_DOWN", "ROUND_UP", "InvalidProduct", "ProductListing", "ProductSpec", "ProductSpecRecorded",
    "check_minimums", "limit_rounding", "parse_product_id", "product_stream_id", "protective_rounding",
    "round_price", "round_quantity",
]

SpecSource = Literal["venue", "settings", "inferred"]
SPEC_SOURCES = ("venue", "settings", "inferred")
_PRODUCT_ID = re.compile(r"^([A-Z0-9]{2,12})-([A-Z0-9]{2,12})$")


class InvalidProduct(DomainError, ValueError):
    """A product id that is not ``BASE-QUOTE`` in upper case, or a spec that cannot be."""


def parse_product_id(product: str) -> tuple[str, str]:
    """(base, quote) of a product id such as ``BTC-USD``; InvalidProduct names what is wrong.

    Ids are upper case, two to twelve letters or digits each side of one dash (``XLM-USD``,
    ``ETH-BTC``, ``1INCH-EUR``).
    """
    match = _PRODUCT_ID.match(product) if isinstance(product, str) else None
    if match is None or match.group(1) == match.group(2):
        shown = repr(product) if product else "an empty product id"
        raise InvalidProduct(f"{shown} is not a product id: expected BASE-QUOTE in upper case, e.g. BTC-USD or ETH-BTC")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class ProductSpec:
    """What prices and sizes of one product may be (see the module docstring for the rounding rule)."""

    product_id: str
    base_currency: str
    quote_currency: str
    quote_increment: Decimal
    base_increment: Decimal
    min_base_size: Decimal = Decimal(0)
    min_quote_funds: Decimal = Decimal(0)
    source: SpecSource = "venue"

    def __post_init__(self) -> None:
        base, quote = parse_product_id(self.product_id)
        if (base, quote) != (self.base_currency, self.quote_currency):
            raise InvalidProduct(f"{self.product_id}: base/quote {self.base_currency}/{self.quote_currency} "
                                 f"do not match the id")
        for name in ("quote_increment", "base_increment"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise InvalidProduct(f"{self.product_id}: {name} must be a positive decimal, not {value!r}")
        for name in ("min_base_size", "min_quote_funds"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidProduct(f"{self.product_id}: {name} must be a decimal >= 0, not {value!r}")

    @classmethod
    def for_product(cls, product_id: str, quote_increment: Decimal, base_increment: Decimal,
                    min_base_size: Decimal = Decimal(0), min_quote_funds: Decimal = Decimal(0),
                    source: SpecSource = "venue") -> ProductSpec:
        """A spec whose currencies are read from the product id."""
        base, quote = parse_product_id(product_id)
        return cls(product_id, base, quote, Decimal(quote_increment), Decimal(base_increment),
                   Decimal(min_base_size), Decimal(min_quote_funds), source)

    def fields(self) -> dict[str, object]:
        """The spec's values as event fields."""
        return {"product": self.product_id, "base_currency": self.base_currency,
                "quote_currency": self.quote_currency, "quote_increment": self.quote_increment,
                "base_increment": self.base_increment, "min_base_size": self.min_base_size,
                "min_quote_funds": self.min_quote_funds, "source": self.source}


def _step(value: Decimal, increment: Decimal, direction: str) -> Decimal:
    units = (value / increment).to_integral_value(rounding=direction)
    return (units * increment).quantize(increment)


def round_price(price: Decimal, spec: ProductSpec, direction: str) -> Decimal:
    """``price`` on the product's price grid (a multiple of ``quote_increment``), rounded ``direction``.

    ``direction`` is ``ROUND_UP`` or ``ROUND_DOWN`` (decimal's constants): the caller knows which
    way is safe (``protective_rounding``, ``limit_rounding``). The result keeps the increment's
    exponent (0.0016 at increment 0.0001 stays ``0.0016``; 101.237 at 0.01 rounded down is ``101.23``).
    """
    if direction not in (ROUND_UP, ROUND_DOWN):
        raise ValueError(f"direction must be ROUND_UP or ROUND_DOWN, not {direction!r}")
    return _step(Decimal(price), spec.quote_increment, direction)


def protective_rounding(long: bool, kind: Literal["stop_loss", "take_profit"]) -> str:
    """The safe way to round a protective price: toward the entry (see the module docstring)."""
    if kind not in ("stop_loss", "take_profit"):
        raise ValueError(f"kind must be stop_loss or take_profit, not {kind!r}")
    toward_entry_from_below = (kind == "stop_loss") == long  # a long's stop / a short's target sit below
    return ROUND_UP if toward_entry_from_below else ROUND_DOWN


def limit_rounding(buy: bool) -> str:
    """The safe way to round a limit price: a buy down, a sell up."""
    return ROUND_DOWN if buy else ROUND_UP


def round_quantity(quantity: Decimal, spec: ProductSpec) -> Decimal:
    """``quantity`` rounded down to a multiple of ``base_increment`` (never more than asked)."""
    return _step(Decimal(quantity), spec.base_increment, ROUND_DOWN)


def check_minimums(quantity: Decimal, price: Decimal, spec: ProductSpec) -> str | None:
    """Why an order of ``quantity`` at ``price`` is below the product's minimums, or None when it is not.

    The reason names the rule and the figures, in the product's currencies.
    """
    if quantity <= 0:
        return (f"size {quantity} {spec.base_currency} rounds to nothing at the base increment "
                f"{spec.base_increment} (min_base_size)")
    if quantity < spec.min_base_size:
        return f"size {quantity} {spec.base_currency} is below the minimum {spec.min_base_size} (min_base_size)"
    funds = quantity * price
    if funds < spec.min_quote_funds:
        return (f"funds {funds.quantize(spec.quote_increment, rounding=ROUND_DOWN)} {spec.quote_currency} are below "
                f"the minimum {spec.min_quote_funds} (min_quote_funds)")
    return None


# --- the spec in the log ---------------------------------------------------------------------------


def product_stream_id(product: str) -> uuid.UUID:
    """The stream of one product's recorded specs (the same id everywhere)."""
    return uuid.UUID(bytes=hashlib.sha1(f"{EVENT_NAMESPACE}:product:{product}".encode()).digest()[:16], version=5)


class ProductSpecRecorded(DomainEvent):
    """What was known of a product (from the venue, or the settings) when a run or an import used it."""

    product: str
    base_currency: str
    quote_currency: str
    quote_increment: Positive
    base_increment: Positive
    min_base_size: NonNegative
    min_quote_funds: NonNegative
    source: str  # venue | settings | inferred

    @model_validator(mode="after")
    def _consistent(self):
        if self.source not in SPEC_SOURCES:
            raise FieldProblem("source", self.source, f"must be one of {', '.join(SPEC_SOURCES)}")
        try:
            self.spec()
        except InvalidProduct as exc:
            raise FieldProblem("product", self.product, str(exc)) from None
        return self

    def spec(self) -> ProductSpec:
        return ProductSpec(self.product, self.base_currency, self.quote_currency, self.quote_increment,
                           self.base_increment, self.min_base_size, self.min_quote_funds, self.source)

    def mutate(self, aggregate: ProductListing | None) -> ProductListing:
        # The first record starts the stream; later ones (the venue changed an increment) continue it.
        if aggregate is not None:
            return super().mutate(aggregate)  # checks the stream position, then apply()
        if self.originator_version != 1:
            raise DomainError("the first ProductSpecRecorded of a product has version 1")
        listing = ProductListing.__new__(ProductListing)
        Aggregate.__init__(listing, self.originator_id, self.originator_version, self.occurred_at)
        self.apply(listing)
        return listing

    def apply(self, listing: ProductListing) -> None:
        listing.spec = self.spec()


class ProductListing(Aggregate):
    """One product's spec as last recorded."""

    spec: ProductSpec

    @classmethod
    def first(cls, spec: ProductSpec, meta: EventMeta) -> ProductListing:
        event = ProductSpecRecorded.build(product_stream_id(spec.product_id), 1, meta, **spec.fields())
        listing = event.mutate(None)
        listing._pending.append(event)
        return listing

    def record(self, spec: ProductSpec, meta: EventMeta) -> bool:
        """Record a changed spec; False (nothing recorded) when it is the same as the last one."""
        if spec.product_id != self.spec.product_id:
            raise InvalidProduct(f"a {spec.product_id} spec is not for {self.spec.product_id}")
        if spec == self.spec:
            return False
        self._trigger(ProductSpecRecorded, meta, **spec.fields())
        return True
