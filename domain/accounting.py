"""The account ledger: cash, positions and P&L derived from fills (pure).

A ``Portfolio`` is what the fills in the log add up to. It holds quote-currency
cash and, per product, a signed ``Position`` (negative quantity = short).

Arithmetic is exact ``Decimal`` with no rounding anywhere; the exchange decides
the precision of prices and fees and the ledger keeps what it is given. The
one division (releasing part of a position's entry cost on a partial
reduction) can carry a digit beyond the context precision, but a position that
goes back to zero releases exactly what is left, so every closed round trip's
realized P&L is exact: the sum of what it sold minus what it bought.

- BUY: cash -= qty * price + fee.   SELL: cash += qty * price - fee.
- Increasing a position adds ``qty * price`` to its entry cost (so the average
  entry is the quantity-weighted average); reducing it realizes
  ``(price - average_entry) * closed_qty`` for a long, the reverse for a short.
- A fill through zero closes the position and opens the rest at the fill
  price; its fee is split between the two in proportion to the quantities.
- ``realized_pnl`` is gross (price moves only); fees are counted apart in
  ``fees``/``fees_paid``. A round trip (flat -> open -> flat) is a win when its
  realized P&L minus all its fees is > 0; otherwise it is a loss (so a
  break-even trip counts against the consecutive-loss streak).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Any

from domain.events import DomainError, FieldProblem
from domain.order import OrderSide

__all__ = [
    "FillEffect",
    "InsufficientFunds",
    "MissingMark",
    "Portfolio",
    "PortfolioSnapshot",
    "Position",
    "PositionChange",
    "PositionSnapshot",
    "RoundTrip",
]

ZERO = Decimal(0)


class InsufficientFunds(DomainError):
    """A withdrawal asked for more cash than the account holds."""


class MissingMark(DomainError):
    """Equity or exposure was asked for without a mark price for an open position."""


class PositionChange(str, Enum):
    """What a fill did to the position of its product."""

    OPENED = "OPENED"
    INCREASED = "INCREASED"
    REDUCED = "REDUCED"
    CLOSED = "CLOSED"
    FLIPPED = "FLIPPED"


@dataclass(frozen=True)
class RoundTrip:
    """One position from flat back to flat (or through zero)."""

    product: str
    direction: str  # "LONG" or "SHORT"
    quantity: Decimal  # total quantity entered during the trip
    realized_pnl: Decimal  # gross
    fees: Decimal  # entry and exit fees of the trip

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def won(self) -> bool:
        return self.net_pnl > 0


@dataclass(frozen=True)
class FillEffect:
    """What one fill did: realized P&L, the position change, the state after it."""

    product: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    change: PositionChange
    realized_pnl: Decimal
    closed_quantity: Decimal
    opened_quantity: Decimal
    position_quantity: Decimal
    average_entry: Decimal | None
    cash: Decimal
    round_trip: RoundTrip | None = None


@dataclass(frozen=True)
class PositionSnapshot:
    product: str
    quantity: Decimal
    average_entry: Decimal | None
    entry_cost: Decimal
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True)
class PortfolioSnapshot:
    cash: Decimal
    deposited: Decimal
    withdrawn: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    trades: int
    wins: int
    consecutive_losses: int
    positions: tuple[PositionSnapshot, ...]

    @property
    def net_realized_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees_paid


class Position:
    """The signed holding of one product, its entry cost and its P&L so far."""

    def __init__(self, product: str):
        self.product = product
        self.quantity = ZERO  # signed: negative is short
        self.entry_cost = ZERO  # signed: sum of qty * entry price of what is open
        self.realized_pnl = ZERO  # gross, over the product's life
        self.fees = ZERO  # every fee paid on the product
        # the round trip in progress
        self._trip_pnl = ZERO
        self._trip_fees = ZERO
        self._trip_quantity = ZERO

    @property
    def is_held(self) -> bool:
        return self.quantity != 0

    @property
    def direction(self) -> str | None:
        if self.quantity > 0:
            return "LONG"
        if self.quantity < 0:
            return "SHORT"
        return None

    @property
    def average_entry(self) -> Decimal | None:
        """Quantity-weighted entry price of the open quantity; None when flat."""
        if not self.quantity:
            return None
        return self.entry_cost / self.quantity

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """(mark - average_entry) * quantity, signed for shorts; 0 when flat."""
        return self.quantity * mark - self.entry_cost

    def snapshot(self) -> PositionSnapshot:
        return PositionSnapshot(
            self.product, self.quantity, self.average_entry, self.entry_cost, self.realized_pnl, self.fees
        )

    def _apply(self, side: OrderSide, quantity: Decimal, price: Decimal, fee: Decimal) -> FillEffect:
        signed = quantity if side is OrderSide.BUY else -quantity
        before = self.quantity
        self.fees += fee
        if before == 0 or (before > 0) == (signed > 0):
            change = PositionChange.OPENED if before == 0 else PositionChange.INCREASED
            self._enter(signed, price, fee)
            return self._effect(side, quantity, price, fee, change, ZERO, ZERO, quantity, None)

        closed = min(quantity, abs(before))
        close_fee = fee if closed == quantity else fee * closed / quantity
        if closed == abs(before):
            released = self.entry_cost  # all of it: exact
        else:
            released = self.entry_cost * closed / abs(before)
        direction = 1 if before > 0 else -1
        realized = direction * closed * price - released
        self.quantity = before + (-direction) * closed
        self.entry_cost -= released
        self.realized_pnl += realized
        self._trip_pnl += realized
        self._trip_fees += close_fee

        trip = None
        if self.quantity == 0:
            trip = RoundTrip(
                self.product, "LONG" if before > 0 else "SHORT", self._trip_quantity, self._trip_pnl, self._trip_fees
            )
            self._trip_pnl = self._trip_fees = self._trip_quantity = ZERO
            self.entry_cost = ZERO
        opened = quantity - closed
        if opened:
            self._enter(-direction * opened, price, fee - close_fee)
            change = PositionChange.FLIPPED
        else:
            change = PositionChange.CLOSED if self.quantity == 0 else PositionChange.REDUCED
        return self._effect(side, quantity, price, fee, change, realized, closed, opened, trip)

    def _enter(self, signed: Decimal, price: Decimal, fee: Decimal) -> None:
        self.quantity += signed
        self.entry_cost += signed * price
        self._trip_quantity += abs(signed)
        self._trip_fees += fee

    def _effect(self, side, quantity, price, fee, change, realized, closed, opened, trip) -> FillEffect:
        return FillEffect(
            product=self.product,
            side=side,
            quantity=quantity,
            price=price,
            fee=fee,
            change=change,
            realized_pnl=realized,
            closed_quantity=closed,
            opened_quantity=opened,
            position_quantity=self.quantity,
            average_entry=self.average_entry,
            cash=ZERO,  # filled in by the portfolio
            round_trip=trip,
        )


def _amount(name: str, value: Any, *, positive: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise FieldProblem(name, value, "must be a Decimal (floats are refused)")
    value = Decimal(value)
    if not value.is_finite():
        raise FieldProblem(name, value, "must be finite")
    if positive and value <= 0:
        raise FieldProblem(name, value, "must be > 0")
    if not positive and value < 0:
        raise FieldProblem(name, value, "must be >= 0")
    return value


class Portfolio:
    """Cash and positions from deposits, withdrawals and fills, in the quote currency."""

    def __init__(self, cash: Decimal = ZERO):
        self.cash = _amount("cash", cash, positive=False)
        self.deposited = ZERO
        self.withdrawn = ZERO
        self.realized_pnl = ZERO  # gross, all products
        self.fees_paid = ZERO
        self.trades = 0  # round trips closed
        self.wins = 0
        self.consecutive_losses = 0
        self.positions: dict[str, Position] = {}

    # --- money in and out ----------------------------------------------------

    def deposit(self, amount: Decimal) -> None:
        amount = _amount("amount", amount)
        self.cash += amount
        self.deposited += amount

    def withdraw(self, amount: Decimal) -> None:
        amount = _amount("amount", amount)
        if amount > self.cash:
            raise InsufficientFunds(f"cannot withdraw {amount}: cash is {self.cash}")
        self.cash -= amount
        self.withdrawn += amount

    # --- fills ---------------------------------------------------------------

    def apply_fill(
        self, product: str, side: OrderSide | str, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> FillEffect:
        """Book one fill: move cash, change the position, count a closed round trip."""
        side = OrderSide(side)
        quantity = _amount("quantity", quantity)
        price = _amount("price", price)
        fee = _amount("fee", fee, positive=False)
        if not product:
            raise FieldProblem("product", product, "must not be empty")
        position = self.positions.get(product)
        if position is None:
            position = self.positions[product] = Position(product)
        effect = position._apply(side, quantity, price, fee)

        notional = quantity * price
        self.cash += -notional - fee if side is OrderSide.BUY else notional - fee
        self.fees_paid += fee
        self.realized_pnl += effect.realized_pnl
        if effect.round_trip is not None:
            self.trades += 1
            if effect.round_trip.won:
                self.wins += 1
                self.consecutive_losses = 0
            else:
                self.consecutive_losses += 1
        return replace(effect, cash=self.cash)

    def reset_loss_streak(self) -> None:
        """Start the consecutive-loss count again (an operator resumed trading after a halt)."""
        self.consecutive_losses = 0

    # --- queries -------------------------------------------------------------

    def position(self, product: str) -> Position:
        """The product's position (a flat one, not stored, if never traded)."""
        return self.positions.get(product) or Position(product)

    @property
    def open_positions(self) -> int:
        return sum(1 for position in self.positions.values() if position.is_held)

    @property
    def losses(self) -> int:
        return self.trades - self.wins

    @property
    def net_realized_pnl(self) -> Decimal:
        """Realized P&L after every fee paid."""
        return self.realized_pnl - self.fees_paid

    def unrealized_pnl(self, product: str, mark: Decimal) -> Decimal:
        return self.position(product).unrealized_pnl(_amount("mark", mark))

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        """Cash plus the marked value of every open position (shorts count negative)."""
        return self.cash + sum((p.quantity * self._mark(p, marks) for p in self._held()), ZERO)

    def exposure(self, marks: dict[str, Decimal]) -> Decimal:
        """Gross notional of the open positions at the marks: sum of |qty * mark|."""
        return sum((abs(p.quantity * self._mark(p, marks)) for p in self._held()), ZERO)

    def snapshot(self) -> PortfolioSnapshot:
        return PortfolioSnapshot(
            cash=self.cash,
            deposited=self.deposited,
            withdrawn=self.withdrawn,
            realized_pnl=self.realized_pnl,
            fees_paid=self.fees_paid,
            trades=self.trades,
            wins=self.wins,
            consecutive_losses=self.consecutive_losses,
            positions=tuple(self.positions[name].snapshot() for name in sorted(self.positions)),
        )

    def _held(self) -> list[Position]:
        return [self.positions[name] for name in sorted(self.positions) if self.positions[name].is_held]

    @staticmethod
    def _mark(position: Position, marks: dict[str, Decimal]) -> Decimal:
        try:
            mark = marks[position.product]
        except KeyError:
            raise MissingMark(
                f"no mark price for {position.product} (open quantity {position.quantity})"
            ) from None
        return _amount(f"marks[{position.product}]", mark)
