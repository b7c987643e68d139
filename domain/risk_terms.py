"""The terms risk judges by: the limits (the ``[risk]`` settings), the state it judges (what the loop
knows now), and the verdict it gives (every figure it compared, as Decimals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.events import FieldProblem

__all__ = ["RiskLimits", "RiskState", "RiskVerdict"]

ZERO = Decimal(0)


@dataclass(frozen=True)
class RiskLimits:
    """The limits risk enforces (field names match the ``[risk]`` settings)."""

    max_position_size_pct: Decimal = Decimal(25)
    max_daily_loss_pct: Decimal = Decimal(3)
    max_concurrent_positions: int = 1
    require_stop_loss: bool = True
    max_leverage: Decimal = Decimal(1)
    min_balance: Decimal = Decimal(100)
    halt_cooldown_minutes: int = 60
    rapid_loss_pct: Decimal = Decimal(5)
    rapid_loss_window_minutes: int = 60
    max_consecutive_losses: int = 5
    allow_shorts: bool = False
    max_drawdown_pct: Decimal | None = Decimal(20)  # None: no drawdown breaker

    def __post_init__(self) -> None:
        for name in ("max_position_size_pct", "max_daily_loss_pct", "max_leverage", "min_balance", "rapid_loss_pct",
                     "max_drawdown_pct"):
            value = getattr(self, name)
            if value is None and name == "max_drawdown_pct":
                continue
            if isinstance(value, float) or not isinstance(value, (Decimal, int)) or isinstance(value, bool):
                raise FieldProblem(name, value, "must be a Decimal (floats are refused)")
            object.__setattr__(self, name, Decimal(value))


@dataclass(frozen=True)
class RiskState:
    """What risk needs to know now, for the product the decision is about.

    ``day_start_equity`` is the equity at 00:00 UTC of ``now``'s day (or the
    first equity seen that day); ``recent_equity`` holds (time, equity) points
    of the rapid-loss window; ``daily_loss_breached_on`` is the UTC day a
    daily-loss breach was recorded. ``position_notional`` (|qty * mark| of this
    product's position) feeds the size cap; ``leverage`` is the configured one.
    """

    now: datetime
    equity: Decimal
    cash: Decimal
    day_start_equity: Decimal
    open_positions: int = 0
    position_quantity: Decimal = ZERO
    exposure: Decimal = ZERO
    consecutive_losses: int = 0
    recent_equity: tuple[tuple[datetime, Decimal], ...] = ()
    halted: bool = False
    halted_at: datetime | None = None
    daily_loss_breached_on: date | None = None
    position_notional: Decimal = ZERO
    leverage: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        for name in ("now", "halted_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise FieldProblem(name, value, "naive datetime (a UTC timezone is required)")


@dataclass(frozen=True)
class RiskVerdict:
    """The outcome: approved or not, the deciding rule, sizes, and the figures compared."""

    approved: bool
    rule: str
    requested_size_pct: Decimal
    approved_size_pct: Decimal
    message: str
    numbers: dict[str, Decimal]

    def event_fields(self) -> dict[str, Any]:
        """The fields of a ``RiskAssessed`` event (``Decision.assess(meta, **fields)``).

        What ``asdict`` gives (its deep copy of ``numbers`` keeps the same Decimals), without its recursion.
        """
        return {
            "approved": self.approved, "rule": self.rule, "requested_size_pct": self.requested_size_pct,
            "approved_size_pct": self.approved_size_pct, "message": self.message, "numbers": dict(self.numbers),
        }
