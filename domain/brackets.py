"""Brackets: the stop loss and take profit that protect an open position.

Pure rules shared by every exchange adapter (paper and live) and the replay:

- ``bracket_after_fill``: a fill that closes or flips the position voids the old
  bracket; a fill that enters (opens or adds to) a position with a stop loss or
  take profit on its order arms a new one.
- ``Bracket.hit_by(candle)``: does a closed candle (one that started at or after
  the bracket was armed) touch the stop or the take profit? When one candle
  touches both, the stop wins (the cautious reading of a bar whose path inside
  is unknown). The trigger price is the level itself, even when the candle gaps
  through it; the closing order is the caller's business.
- ``BracketBook``: an exchange's brackets by product.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from domain.market import Candle
from domain.order import OrderSide

__all__ = ["Bracket", "BracketBook", "BracketHit", "BracketLevel", "bracket_after_fill"]


class BracketLevel(str, Enum):
    """Which side of a bracket a candle touched."""

    STOP_LOSS = "stop loss"
    TAKE_PROFIT = "take profit"


@dataclass(frozen=True)
class BracketHit:
    """A candle touched a bracket: the level that fires, at what price, and whether both were touched."""

    level: BracketLevel
    price: Decimal
    both_touched: bool = False

    @property
    def is_stop_loss(self) -> bool:
        return self.level is BracketLevel.STOP_LOSS


@dataclass(frozen=True)
class Bracket:
    """The stop loss and take profit armed on a product's position."""

    product: str
    order_id: uuid.UUID  # the entry order that armed it
    long: bool
    stop_loss_price: Decimal | None
    take_profit_price: Decimal | None
    armed_at: datetime

    def hit_by(self, candle: Candle) -> BracketHit | None:
        """The level this closed candle fires (the stop when both are touched), or None."""
        if candle.product != self.product or candle.start < self.armed_at:
            return None
        stop, take = self.stop_loss_price, self.take_profit_price
        if self.long:
            stop_hit = stop is not None and candle.low <= stop
            take_hit = take is not None and candle.high >= take
        else:
            stop_hit = stop is not None and candle.high >= stop
            take_hit = take is not None and candle.low <= take
        if stop_hit:
            return BracketHit(BracketLevel.STOP_LOSS, stop, both_touched=take_hit)
        if take_hit:
            return BracketHit(BracketLevel.TAKE_PROFIT, take)
        return None


def bracket_after_fill(
    current: Bracket | None,
    *,
    product: str,
    order_id: uuid.UUID,
    side: OrderSide | str,
    before: Decimal,
    after: Decimal,
    stop_loss_price: Decimal | None,
    take_profit_price: Decimal | None,
    at: datetime,
) -> Bracket | None:
    """The product's bracket once a fill of ``order_id`` moved its signed position from ``before`` to ``after``.

    ``current`` is the product's bracket before the fill. Closed or flipped: the old bracket is
    void. Entering (the position now points the order's way) with a stop loss or take profit on the
    order: a new bracket armed at ``at``. Otherwise ``current`` stays.
    """
    if after == 0 or (before != 0 and (before > 0) != (after > 0)):
        current = None
    entering = after != 0 and (after > 0) == (OrderSide(side) is OrderSide.BUY)
    if entering and (stop_loss_price is not None or take_profit_price is not None):
        return Bracket(product, order_id, after > 0, stop_loss_price, take_profit_price, at)
    return current


class BracketBook:
    """The brackets an exchange holds, one per product; ``fire`` disarms the one a candle fires."""

    def __init__(self) -> None:
        self._by_product: dict[str, Bracket] = {}

    def get(self, product: str) -> Bracket | None:
        return self._by_product.get(product)

    def arm(self, bracket: Bracket) -> Bracket:
        """Arm (or replace) the bracket of ``bracket.product``."""
        self._by_product[bracket.product] = bracket
        return bracket

    def disarm(self, product: str) -> Bracket | None:
        """Remove the product's bracket; the one removed, or None."""
        return self._by_product.pop(product, None)

    def replace(self, product: str, bracket: Bracket | None) -> None:
        """Hold ``bracket`` as the product's bracket (e.g. from ``bracket_after_fill``); None: hold none."""
        if bracket is None:
            self._by_product.pop(product, None)
        else:
            self._by_product[product] = bracket

    def fire(self, candle: Candle) -> tuple[Bracket, BracketHit] | None:
        """The candle's product's bracket and the level the candle fires; a bracket that fires is disarmed."""
        bracket = self._by_product.get(candle.product)
        hit = None if bracket is None else bracket.hit_by(candle)
        if hit is None:
            return None
        del self._by_product[candle.product]
        return bracket, hit
