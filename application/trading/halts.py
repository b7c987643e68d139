"""The trading loop's halts: which control is in force, the breakers it checks on every candle (emergency
stop, the drawdown breaker), a risk halt lapsing after its cooldown, and flattening on the drawdown breaker.

A part of ``TradingLoop`` (application/trading/loop.py), kept beside it; the loop records what it decides.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from domain.control import RunMode, Severity, TradingControl
from domain.order import OrderSide
from domain.risk import RiskState, drawdown_breach, halt_lapsed, unhalted_emergency_stop

ZERO = Decimal(0)


class Breakers:
    """The halts of a ``TradingLoop`` (mixed into it: it reads the loop's book, settings and exchange)."""

    @property
    def _halt(self) -> TradingControl | None:
        """The control in force: the bot's own when it is halted or no halt of every bot is."""
        return self._fleet if self._fleet is not None and self._fleet.halted and not (
            self._control is not None and self._control.halted) else self._control

    @property
    def halt_holds(self) -> bool:
        """True when the run is halted until an operator resumes it (an operator's halt or the drawdown
        breaker's P0): no candle lifts it."""
        control = self._halt
        return control is not None and control.halted and (not control.halted_by_risk or control.severity is Severity.P0)

    @property
    def halted_now(self) -> bool:
        control = self._halt
        return control is not None and control.halted

    def refresh_control(self, control: TradingControl | None, fleet: TradingControl | None = None) -> None:
        """The bot's control (and every bot's) as just read from the log (an operator may have halted or resumed)."""
        if self.mode is not RunMode.BACKTEST and (control is not None or fleet is not None):
            was_halted = bool(self._halt and self._halt.halted)
            self._control, self._fleet = control or self._control, fleet or self._fleet
            if was_halted and not self._halt.halted:
                self.book.rebase_breaker()  # an operator lifted the halt: the breaker measures from here on
                self.book.is_halted = False

    def _check_halts(self, at: datetime, equity: Decimal) -> None:
        control, limits = self._halt, self.settings.limits
        if control is not None and control.halted:
            # The loop's own halts lapse after the cooldown; an operator's and the drawdown breaker's (P0) wait.
            if not control.halted_by_risk or control.severity is Severity.P0:
                return
            state = RiskState(
                now=at, equity=equity, cash=self.portfolio.cash, day_start_equity=self.book.day_start_equity or ZERO,
                consecutive_losses=self.portfolio.consecutive_losses, recent_equity=tuple(self.book.recent_equity),
                halted=True, halted_at=control.halted_at,
            )
            if halt_lapsed(state, limits):
                control.resume("cooldown elapsed after an automatic halt", self._meta(at, actor="risk"))
                self._take(control)
                self.book.resumed(at)
                self.portfolio.reset_loss_streak()
            return
        # emergency_stop of the unhalted book, without a RiskState per candle (``at`` is the close of
        # a candle whose CandleClosed was just validated, so it is UTC-aware as RiskState requires).
        reason = unhalted_emergency_stop(at, equity, self.book.recent_equity, self.portfolio.consecutive_losses, limits)
        severity = Severity.P1
        if reason is None:
            reason, severity = drawdown_breach(self.book.breaker_peak, equity, limits), Severity.P0
        if reason is None:
            return
        meta = self._meta(at, actor="risk")
        if control is None:
            control = self._control = TradingControl.start(meta, self._control_id)
        control.halt(reason, severity, meta)
        halt = self._take(control)[-1]
        self.book.halted(at)
        self.summary.halts += 1
        for report in self.exchange.cancel_all(at):
            self._apply_report(report, None)
        if severity is Severity.P0:  # the drawdown breaker: flat until an operator resumes
            if self.summary.drawdown_halted_at is None:
                self.summary.drawdown_halted_at, self.summary.drawdown_halt_reason = at, reason
            self._flatten(at, halt.event_id)

    def _flatten(self, at: datetime, causation: uuid.UUID | None) -> None:
        """Close the run's position at the market (the exit of the drawdown breaker)."""
        product = self.settings.product
        position = self.portfolio.position(product)
        mark = self.book.marks.get(product)
        if position.quantity == 0 or mark is None:
            return
        self.exchange.disarm(product)
        side = OrderSide.SELL if position.quantity > 0 else OrderSide.BUY
        self._place(None, side, abs(position.quantity), mark, at, causation)
