"""A run's books, folded once: the one definition of every figure of a run and its UTC days (pure).

The trading loop (to decide), replay (to show each step), the money projections
(to write ``pnl_daily`` and ``risk_usage``) and the health watch (to alert) all
fold a run's events through a ``RunBook``; none keeps a definition of its own.

What a consumer tells the book, in the order the events were recorded:

- ``deposit``/``withdraw``/``fill`` (each dated): cash and positions, through
  ``domain.accounting.Portfolio``;
- ``step(at, product, close)``: the run's candle closed at ``at``: its close is
  the mark of the product;
- ``decided(at)``: the run decided on its current candle. This is the run's
  *equity point*: the equity risk judges (after the candle's own fills, before
  anything the decision causes). The UTC day's start equity is the equity at
  the day's first equity point;
- ``halted``/``resumed``, ``refused_for_daily_loss`` (a ``RiskAssessed`` with
  rule ``max_daily_loss``), ``limit_pct`` (the daily-loss limit in force).

Days. A day is the UTC date of an event's ``occurred_at`` (a candle's is its
close, so the 23:00 candle belongs to the next day). The first event dated in
a new day closes the previous day (its figures are final: ``closed_days``)
and opens the new one, whose start equity is, until its first equity point,
the equity before that event. An event dated earlier than the current day
counts in the current day.

The figures of a day (``DayFigures``), with these names on every surface:

- ``day_start_equity``; ``end_equity`` (the equity after the day's last event,
  or now for the open day); ``day_pnl = end_equity - day_start_equity``;
- ``realized_pnl`` (gross) and ``fees`` of the fills dated that day;
- ``daily_loss_pct = (day_start_equity - end_equity) / day_start_equity * 100``
  (negative on a gain, 0 when the start equity is not > 0), as the risk rule
  ``max_daily_loss`` computes it (domain/risk.py);
- ``worst_daily_loss_pct``: the highest daily loss at the day's equity points
  and at its end;
- ``max_drawdown_pct``: the deepest fall from the day's running peak (which
  starts at the day's start equity), over the same points;
- ``risk_score``/``risk_level``: ``risk_score()`` below.

The run's ``max_drawdown_pct`` is the deepest fall from the run's running peak
(which starts at the first deposit) over every equity point and day end.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.accounting import FillEffect, Portfolio, Position
from domain.day_figures import (  # noqa: F401  (re-exported: the run book's figures)
    DAY_FIGURE_NAMES, DEFAULT_DAILY_LOSS_LIMIT_PCT, DRAWDOWN_SCALE_PCT, DayFigures, risk_score, shown_day_figures,
)
from domain.order import OrderSide

__all__ = ["BooksHolder", "DAY_FIGURE_NAMES", "DEFAULT_DAILY_LOSS_LIMIT_PCT", "DRAWDOWN_SCALE_PCT", "DayFigures", "RunBook", "risk_score",
           "shown_day_figures"]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
def loss_pct(start: Decimal | None, equity: Decimal) -> Decimal:
    """(start - equity) / start * 100; 0 when there is no start or it is not > 0."""
    if start is None or start <= 0:
        return ZERO
    return (start - equity) / start * HUNDRED


def _fall_pct(peak: Decimal, equity: Decimal) -> Decimal:
    return (peak - equity) / peak * HUNDRED if peak > 0 and equity < peak else ZERO


@dataclass
class _Day:
    """The open day's running figures."""

    day: date
    start_equity: Decimal
    started: bool = False  # its start equity was taken at an equity point
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    peak: Decimal = ZERO
    worst_loss: Decimal | None = None
    max_drawdown: Decimal = ZERO
    breached: bool = False
    halted: bool = False


@dataclass
class RunBook:
    """The books of one run, folded event by event (see the module's docstring for the rules)."""

    portfolio: Portfolio = field(default_factory=Portfolio)
    marks: dict[str, Decimal] = field(default_factory=dict)
    limit_pct: Decimal = DEFAULT_DAILY_LOSS_LIMIT_PCT
    rapid_loss_window: timedelta = timedelta(minutes=60)
    current: _Day | None = None
    peak_equity: Decimal | None = None
    max_drawdown_pct: Decimal = ZERO
    breaker_peak: Decimal | None = None  # the peak the drawdown breaker measures from (reset when lifted)
    is_halted: bool = False
    halted_at: datetime | None = None
    daily_loss_breached_on: date | None = None
    recent_equity: deque = field(default_factory=deque)  # (at, equity) of the rapid-loss window
    closed_days: list[DayFigures] = field(default_factory=list)
    keep_closed_days: bool = True

    # --- facts ---------------------------------------------------------------------------

    def deposit(self, at: datetime, amount: Decimal) -> None:
        self.roll(at)
        self.portfolio.deposit(amount)
        if self.peak_equity is None or self.peak_equity <= 0:
            self.peak_equity = self.equity()
        if self.breaker_peak is None or self.breaker_peak <= 0:
            self.breaker_peak = self.equity()

    def withdraw(self, at: datetime, amount: Decimal) -> None:
        self.roll(at)
        self.portfolio.withdraw(amount)

    def fill(self, at: datetime, product: str, side: OrderSide | str, quantity: Decimal, price: Decimal,
             fee: Decimal) -> FillEffect:
        """Book one fill dated ``at`` (the day's realized P&L, fees and round trips count it)."""
        self.roll(at)
        effect = self.portfolio.apply_fill(product, side, quantity, price, fee)
        day = self.current
        if day is not None:
            day.realized += effect.realized_pnl
            day.fees += effect.fee
            if effect.round_trip is not None:
                day.trades += 1
                day.wins += effect.round_trip.won
        return effect

    def step(self, at: datetime, product: str, close: Decimal) -> None:
        """The run's candle of ``product`` closed at ``at`` at ``close``: the product's mark."""
        self.roll(at)
        self.marks[product] = close

    def mark(self, product: str, close: Decimal) -> None:
        """A mark price without a step (a candle seen before the run's first one)."""
        self.marks[product] = close

    def decided(self, at: datetime) -> Decimal:
        """The run's equity point (its decision on the current candle); returns the equity there."""
        self.roll(at)
        equity = self.equity()
        day = self.current
        if day is not None and not day.started:
            day.started = True
            day.start_equity = day.peak = equity
        self._point(equity)
        window = self.recent_equity
        window.append((at, equity))
        since = at - self.rapid_loss_window
        while window and window[0][0] < since:
            window.popleft()
        return equity

    def unchanged_points(self, ats: Sequence[datetime]) -> None:
        """``decided(at)`` for each of ``ats`` (in order) while nothing can change the equity between them (a
        flat run between candles, no fills): the same figures, without recomputing one equity per point.

        The first point, and the first of each new UTC day, are decided in full (found by bisection, not
        by looking at every point); the others repeat that equity, and only those within the rapid-loss
        window of the last point are kept (in the window)."""
        count = len(ats)
        if not count:
            return
        window = self.recent_equity
        since = ats[-1] - self.rapid_loss_window
        tail = bisect_left(ats, since)  # the first point within the window of the last one
        k = 0
        while k < count:
            equity = self.decided(ats[k])
            following = bisect_right(ats, self.current.day, k + 1, count, key=datetime.date)  # a later day's first
            kept = max(k + 1, tail)
            if kept < following:
                window.extend([(at, equity) for at in ats[kept:following]])
            k = following
        while window and window[0][0] < since:
            window.popleft()

    def halted(self, at: datetime) -> None:
        self.roll(at)
        self.is_halted, self.halted_at = True, at
        if self.current is not None:
            self.current.halted = True

    def resumed(self, at: datetime) -> None:
        self.roll(at)
        self.is_halted, self.halted_at = False, None

    def rebase_breaker(self) -> None:
        """An operator lifted the drawdown breaker: it measures from the equity now on."""
        self.breaker_peak = self.equity()

    def refused_for_daily_loss(self, at: datetime) -> None:
        """Risk refused an entry with rule ``max_daily_loss``: the day counts as breached."""
        self.roll(at)
        self.daily_loss_breached_on = at.date()
        if self.current is not None:
            self.current.breached = True

    # --- days --------------------------------------------------------------------------------

    def roll(self, at: datetime) -> None:
        """An event dated ``at`` is about to be applied: close the day when ``at`` is in a later UTC day."""
        today = at.date()
        day = self.current
        if day is not None and today <= day.day:
            return
        if day is not None:
            if self.keep_closed_days:
                self.closed_days.append(self._close_day())
            else:  # the day's end is still one of its points; its figures (pure) would be dropped unread
                self._point(self.equity())
        self.current = _Day(today, self.equity())
        self.current.peak = self.current.start_equity

    def _close_day(self) -> DayFigures:
        self._point(self.equity())  # the day's end is one of its points
        return self.day_figures()

    def _point(self, equity: Decimal) -> None:
        day = self.current
        if day is not None:
            loss = loss_pct(day.start_equity, equity)
            if day.worst_loss is None or loss > day.worst_loss:
                day.worst_loss = loss
            if equity > day.peak:
                day.peak = equity
            fall = _fall_pct(day.peak, equity)
            if fall > day.max_drawdown:
                day.max_drawdown = fall
            if day.start_equity > 0 and (day.start_equity - equity) * HUNDRED >= self.limit_pct * day.start_equity:
                day.breached = True
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        if self.breaker_peak is None or equity > self.breaker_peak:
            self.breaker_peak = equity
        fall = _fall_pct(self.peak_equity, equity)
        if fall > self.max_drawdown_pct:
            self.max_drawdown_pct = fall

    # --- figures -----------------------------------------------------------------------------

    def _held(self) -> list[Position]:
        positions = self.portfolio.positions
        return [positions[name] for name in sorted(positions) if positions[name].is_held]

    def _value(self, position: Position) -> Decimal:
        # A position no candle of the run has marked yet is worth its entry cost.
        mark = self.marks.get(position.product)
        return position.entry_cost if mark is None else position.quantity * mark

    def equity(self) -> Decimal:
        """Cash plus every open position at its mark (called per candle and per event: no sort for one product)."""
        positions = self.portfolio.positions
        if len(positions) == 1:
            (only,) = positions.values()
            return self.portfolio.cash + (self._value(only) if only.quantity else ZERO)
        return self.portfolio.cash + sum((self._value(p) for p in self._held()), ZERO)

    def unrealized_pnl(self) -> Decimal:
        return sum((self._value(p) - p.entry_cost for p in self._held()), ZERO)

    def exposure(self) -> Decimal:
        """Gross notional of the open positions at their marks: sum of |qty * mark|."""
        return sum((abs(self._value(p)) for p in self._held()), ZERO)

    @property
    def open_positions(self) -> int:
        return len(self._held())

    @property
    def day(self) -> date | None:
        return None if self.current is None else self.current.day

    @property
    def day_start_equity(self) -> Decimal | None:
        return None if self.current is None else self.current.start_equity

    def daily_loss_pct(self) -> Decimal:
        """The open day's loss now, as the ``max_daily_loss`` rule computes it."""
        return loss_pct(self.day_start_equity, self.equity())

    def drawdown_pct(self) -> Decimal:
        """The fall from the run's peak now."""
        return ZERO if self.peak_equity is None else _fall_pct(self.peak_equity, self.equity())

    def day_figures(self) -> DayFigures:
        """The open day's figures, as at now (its end so far)."""
        day = self.current
        if day is None:
            raise ValueError("the run has no day yet")
        end = self.equity()
        loss = loss_pct(day.start_equity, end)
        worst = loss if day.worst_loss is None or loss > day.worst_loss else day.worst_loss
        peak = max(day.peak, end)
        drawdown = max(day.max_drawdown, _fall_pct(peak, end))
        breached = day.breached or (day.start_equity > 0
                                    and (day.start_equity - end) * HUNDRED >= self.limit_pct * day.start_equity)
        used = max(ZERO, worst / self.limit_pct * HUNDRED) if self.limit_pct else ZERO
        exposure = self.exposure()
        exposure_pct = exposure / end * HUNDRED if end > 0 else ZERO
        score, level = risk_score(used, drawdown, exposure_pct, breached, day.halted)
        return DayFigures(
            day=day.day, day_start_equity=day.start_equity, end_equity=end, day_pnl=end - day.start_equity,
            realized_pnl=day.realized, fees=day.fees, daily_loss_pct=loss, worst_daily_loss_pct=worst,
            max_drawdown_pct=drawdown, risk_score=score, risk_level=level, unrealized_pnl=self.unrealized_pnl(),
            exposure=exposure, open_positions=self.open_positions, trades=day.trades, wins=day.wins,
            daily_loss_limit_pct=self.limit_pct, pct_of_limit_used=used, daily_loss_breached=breached,
            halted=day.halted,
        )

    def take_closed_days(self) -> list[DayFigures]:
        """The days closed since the last call (and forget them)."""
        days, self.closed_days = self.closed_days, []
        return days

    # --- persistence (the projections keep a book between pages) ------------------------------

    def state(self) -> dict[str, Any]:
        """Everything but the portfolio and marks, as JSON-able values (Decimals as exact text)."""
        d = self.current
        return {
            "limit": str(self.limit_pct),
            "day": None if d is None else [d.day.isoformat(), str(d.start_equity), d.started, str(d.realized),
                                           str(d.fees), d.trades, d.wins, str(d.peak),
                                           None if d.worst_loss is None else str(d.worst_loss), str(d.max_drawdown),
                                           d.breached, d.halted],
            "peak": None if self.peak_equity is None else str(self.peak_equity),
            "mdd": str(self.max_drawdown_pct),
            "breaker_peak": None if self.breaker_peak is None else str(self.breaker_peak),
            "halted": None if not self.is_halted else (self.halted_at.isoformat() if self.halted_at else ""),
            "breached_on": None if self.daily_loss_breached_on is None else self.daily_loss_breached_on.isoformat(),
        }

    def restore_state(self, s: dict[str, Any]) -> None:
        self.limit_pct = Decimal(s["limit"])
        d = s["day"]
        self.current = None if d is None else _Day(
            date.fromisoformat(d[0]), Decimal(d[1]), d[2], Decimal(d[3]), Decimal(d[4]), d[5], d[6], Decimal(d[7]),
            None if d[8] is None else Decimal(d[8]), Decimal(d[9]), d[10], d[11])
        self.peak_equity = None if s["peak"] is None else Decimal(s["peak"])
        self.max_drawdown_pct = Decimal(s["mdd"])
        self.breaker_peak = None if s.get("breaker_peak") is None else Decimal(s["breaker_peak"])
        halted = s["halted"]
        self.is_halted = halted is not None
        self.halted_at = datetime.fromisoformat(halted) if halted else None
        self.daily_loss_breached_on = None if s["breached_on"] is None else date.fromisoformat(s["breached_on"])


class BooksHolder:
    """Something that keeps a run's books in ``self.books`` (replay's book, the health follower's run):
    their portfolio, marks and figures, read through (one definition, never a copy)."""

    books: RunBook

    @property
    def portfolio(self) -> Portfolio:
        return self.books.portfolio

    @property
    def marks(self) -> dict[str, Decimal]:
        return self.books.marks

    @property
    def day_start_equity(self) -> Decimal | None:
        return self.books.day_start_equity

    @property
    def day(self) -> date | None:
        """The UTC day the books stand in (None before the run's first event)."""
        return self.books.day

    def equity(self) -> Decimal:
        return self.books.equity()
