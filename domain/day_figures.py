"""A run's day in figures: the names every surface shows (``DAY_FIGURE_NAMES``), how people read them
(``shown_day_figures``), and the one risk score formula. ``domain/run_book.py`` computes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

__all__ = ["DAY_FIGURE_NAMES", "DEFAULT_DAILY_LOSS_LIMIT_PCT", "DRAWDOWN_SCALE_PCT", "DayFigures", "risk_score",
           "shown_day_figures"]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
DEFAULT_DAILY_LOSS_LIMIT_PCT = Decimal(3)
DRAWDOWN_SCALE_PCT = Decimal(10)
"""The drawdown that counts as the full 30 points of the risk score."""


DAY_FIGURE_NAMES = ("day_start_equity", "end_equity", "day_pnl", "realized_pnl", "fees", "daily_loss_pct",
                    "worst_daily_loss_pct", "max_drawdown_pct", "risk_score")
"""The day figures every surface shows, by these names (replay, reports, pnl_daily, the REST API, metrics)."""
_MONEY_NAMES = ("day_start_equity", "end_equity", "day_pnl", "realized_pnl", "fees")
CENT = Decimal("0.01")
PCT_PLACES = Decimal("0.0001")


def shown_day_figures(values: Any) -> dict[str, Any]:
    """The named day figures as people and tools read them: money to the cent, percentages to 0.0001, as text
    (``values``: a mapping or object with the nine names, exact Decimals or their text)."""
    get = values.get if isinstance(values, dict) else (lambda name: getattr(values, name))
    out: dict[str, Any] = {}
    for name in DAY_FIGURE_NAMES:
        value = get(name)
        if name == "risk_score":
            out[name] = None if value is None else int(value)
        elif value is None:
            out[name] = None
        else:
            out[name] = format(Decimal(value).quantize(CENT if name in _MONEY_NAMES else PCT_PLACES), "f")
    return out


def risk_score(pct_of_limit_used: Decimal, drawdown_pct: Decimal, exposure_pct: Decimal, breached: bool,
               halted: bool) -> tuple[int, str]:
    """The risk score: 0-100 and LOW/MEDIUM/HIGH/CRITICAL (the one formula; every surface shows this value).

    score = 0.5 x the share of the daily-loss limit used (worst loss of the day / limit, in %, 0-100)
          + 0.3 x the day's max drawdown against ``DRAWDOWN_SCALE_PCT`` (10% drawdown = 100, capped)
          + 0.2 x exposure as a % of equity (0-100),
    rounded half-even to an integer. Levels: < 25 LOW, < 50 MEDIUM, < 75 HIGH, else CRITICAL; a day on
    which the daily-loss limit was breached or trading was halted is at least HIGH.
    """
    def clamp(x: Decimal) -> Decimal:
        return max(ZERO, min(HUNDRED, x))

    score = (Decimal("0.5") * clamp(pct_of_limit_used)
             + Decimal("0.3") * clamp(drawdown_pct / DRAWDOWN_SCALE_PCT * HUNDRED)
             + Decimal("0.2") * clamp(exposure_pct))
    value = int(score.to_integral_value())
    level = "LOW" if value < 25 else "MEDIUM" if value < 50 else "HIGH" if value < 75 else "CRITICAL"
    if (breached or halted) and level in ("LOW", "MEDIUM"):
        level = "HIGH"
    return value, level


@dataclass(frozen=True)
class DayFigures:
    """One UTC day of a run, by the names every surface uses (exact Decimals; round only to show)."""

    day: date
    day_start_equity: Decimal
    end_equity: Decimal
    day_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal
    daily_loss_pct: Decimal
    worst_daily_loss_pct: Decimal
    max_drawdown_pct: Decimal
    risk_score: int
    risk_level: str
    # beside the named figures
    unrealized_pnl: Decimal = ZERO
    exposure: Decimal = ZERO
    open_positions: int = 0
    trades: int = 0
    wins: int = 0
    daily_loss_limit_pct: Decimal = DEFAULT_DAILY_LOSS_LIMIT_PCT
    pct_of_limit_used: Decimal = ZERO
    daily_loss_breached: bool = False
    halted: bool = False

    def shown(self) -> dict[str, Any]:
        """The nine named figures as people read them (``shown_day_figures``)."""
        return shown_day_figures(self)
