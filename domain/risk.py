"""The risk rules: may this decision trade, and how big (pure, no clock).

``assess`` judges one ``TradeAction`` against a ``RiskState`` (what the loop
knows now, rebuilt from events) and ``RiskLimits`` (the configuration), and
returns a ``RiskVerdict`` naming the rule that decided and carrying, as
Decimals, every figure it compared, so the ``RiskAssessed`` event explains
itself. Reducing risk is always allowed: CLOSE is approved whenever there is
a position, halted or not. New entries (LONG/SHORT) go through the rules in
this order; the first that refuses decides:

    no_size, shorts_disabled, halted / halt_cooldown, rapid_loss,
    consecutive_losses, max_daily_loss, min_balance, stop_loss_required,
    max_concurrent_positions, max_leverage, max_position_size (cuts the size
    to the headroom, or refuses when there is none), then ok.

``emergency_stop`` says when trading must halt (rapid loss, loss streak);
the loop records ``TradingHalted`` with its reason. ``drawdown_breach`` is the
drawdown breaker: equity ``max_drawdown_pct`` or more below the run's peak
(since the run began or an operator last lifted the breaker) halts trading at
P0, flattens the position, and only an operator's resume lifts it. An entry
whose size, on the product's size grid, is below the product's minimums is
refused with rule ``min_order_size`` (the loop checks it once the size is known). Halts: while halted,
entries are refused with ``halt_cooldown`` until ``halt_cooldown_minutes``
have passed since ``halted_at``, then with ``halted`` until the loop records
``TradingResumed`` (``halt_lapsed`` tells it when an automatic halt may lapse;
an operator's halt waits for an operator). The loss streak should restart at
a resume (``Portfolio.reset_loss_streak``), or the rule would re-halt at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from domain.decision import TradeAction, TradeActionKind
from domain.events import FieldProblem
from domain.risk_terms import RiskLimits, RiskState, RiskVerdict

__all__ = [
    "RULES",
    "RiskLimits",
    "RiskState",
    "RiskVerdict",
    "assess",
    "daily_loss_pct",
    "emergency_stop",
    "equity_drop",
    "halt_lapsed",
    "position_size",
]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
QUANTITY_STEP = Decimal("0.00000001")
_SHOWN = Decimal("0.000001")  # percentages in verdict numbers; comparisons use exact figures

RULES = (
    "ok",
    "hold",
    "close",
    "no_position",
    "no_size",
    "shorts_disabled",
    "halted",
    "halt_cooldown",
    "rapid_loss",
    "consecutive_losses",
    "max_daily_loss",
    "min_balance",
    "stop_loss_required",
    "max_concurrent_positions",
    "max_leverage",
    "max_position_size",
    "max_drawdown",
    "min_order_size",
)


# --- figures -------------------------------------------------------------------


def daily_loss_pct(state: RiskState) -> Decimal:
    """(day_start_equity - equity) / day_start_equity * 100; negative on a gain."""
    if state.day_start_equity <= 0:
        return ZERO
    return (state.day_start_equity - state.equity) / state.day_start_equity * HUNDRED


def equity_drop(state: RiskState, limits: RiskLimits) -> tuple[Decimal, Decimal]:
    """(drop %, peak) from the highest equity of the rapid-loss window to now."""
    return _equity_drop(state.now, state.equity, state.recent_equity, limits)


def _equity_drop(
    now: datetime, equity: Decimal, recent_equity: Iterable[tuple[datetime, Decimal]], limits: RiskLimits
) -> tuple[Decimal, Decimal]:
    since = now - timedelta(minutes=limits.rapid_loss_window_minutes)
    points = [value for at, value in recent_equity if since <= at <= now]
    peak = max([*points, equity])
    if peak <= 0:
        return ZERO, peak
    return (peak - equity) / peak * HUNDRED, peak


def halt_lapsed(state: RiskState, limits: RiskLimits) -> bool:
    """True when a halt's cooldown is over (an automatic halt may then be resumed)."""
    if not state.halted or state.halted_at is None:
        return False
    return state.now >= state.halted_at + timedelta(minutes=limits.halt_cooldown_minutes)


def position_size(equity: Decimal, price: Decimal, size_pct: Decimal, leverage: Decimal = Decimal(1),
                  increment: Decimal = QUANTITY_STEP) -> Decimal:
    """Base quantity for ``size_pct`` of equity at ``price``, rounded down to the product's size grid."""
    if price <= 0:
        raise FieldProblem("price", price, "must be > 0")
    if equity <= 0 or size_pct <= 0:
        return ZERO
    quantity = equity * Decimal(size_pct) / HUNDRED * Decimal(leverage) / price
    if increment == QUANTITY_STEP:
        return quantity.quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    return ((quantity / increment).to_integral_value(rounding=ROUND_DOWN) * increment).quantize(increment)


# --- emergency stop --------------------------------------------------------------


def emergency_stop(state: RiskState, limits: RiskLimits) -> str | None:
    """Why trading must halt now (rapid loss or loss streak), or None.

    Returns None when already halted. The reason starts with the rule name.
    """
    if state.halted:
        return None
    return unhalted_emergency_stop(state.now, state.equity, state.recent_equity, state.consecutive_losses, limits)


def unhalted_emergency_stop(
    now: datetime, equity: Decimal, recent_equity: Iterable[tuple[datetime, Decimal]], consecutive_losses: int,
    limits: RiskLimits,
) -> str | None:
    """``emergency_stop`` of a book that is not halted, from its figures (UTC-aware ``now``).

    The trading loop checks every candle; this spares it building a ``RiskState`` each time.
    """
    drop, peak = _equity_drop(now, equity, recent_equity, limits)
    if drop >= limits.rapid_loss_pct:
        return (
            f"rapid_loss: equity fell {_show(drop)}% within {limits.rapid_loss_window_minutes} minutes "
            f"(from {peak} to {equity}; limit {limits.rapid_loss_pct}%)"
        )
    if consecutive_losses >= limits.max_consecutive_losses:
        return (
            f"consecutive_losses: {consecutive_losses} losing trades in a row "
            f"(limit {limits.max_consecutive_losses})"
        )
    return None


def drawdown_breach(peak: Decimal | None, equity: Decimal, limits: RiskLimits) -> str | None:
    """Why the drawdown breaker trips now (equity ``max_drawdown_pct`` or more below ``peak``), or None."""
    limit = limits.max_drawdown_pct
    if limit is None or peak is None or peak <= 0 or equity >= peak:
        return None
    drawdown = (peak - equity) / peak * HUNDRED
    if drawdown < limit:
        return None
    return (f"max_drawdown: equity {equity} is {_show(drawdown)}% below the peak {peak} "
            f"(limit {limit}%); flat and halted until an operator resumes")


def min_order_refusal(verdict: RiskVerdict, kind: str, reason: str, limits_numbers: dict[str, Decimal]) -> RiskVerdict:
    """The verdict that refuses an entry whose size is below the product's minimums (``reason`` names the rule)."""
    return RiskVerdict(False, "min_order_size", verdict.requested_size_pct, ZERO,
                       f"{kind} refused: {reason}", {**verdict.numbers, **limits_numbers})


# --- the verdict -------------------------------------------------------------------


def assess(action: TradeAction, state: RiskState, limits: RiskLimits) -> RiskVerdict:
    """Judge one decision; deterministic in its arguments."""
    requested = _decimal(action.size_pct)
    base = _base_numbers(state)

    def verdict(approved: bool, rule: str, size: Decimal, message: str, **numbers: Decimal) -> RiskVerdict:
        return RiskVerdict(approved, rule, requested, size, message, {**base, **numbers})

    def refuse(rule: str, message: str, **numbers: Decimal) -> RiskVerdict:
        return verdict(False, rule, ZERO, message, **numbers)

    if action.action is TradeActionKind.HOLD:
        return verdict(True, "hold", ZERO, "HOLD: no order")
    if action.action is TradeActionKind.CLOSE:
        if state.position_quantity == 0:
            return refuse("no_position", "CLOSE refused: there is no position to close")
        return verdict(True, "close", requested, f"CLOSE approved: reduces the position of {state.position_quantity}")

    kind = action.action.value
    if requested <= 0:
        return refuse("no_size", f"{kind} refused: size_pct is 0")
    if action.action is TradeActionKind.SHORT and not limits.allow_shorts:
        return refuse("shorts_disabled", "SHORT refused: shorts are disabled (allow_shorts = false)")

    if state.halted:
        if state.halted_at is not None and not halt_lapsed(state, limits):
            since = _minutes(state.now - state.halted_at)
            return refuse(
                "halt_cooldown",
                f"{kind} refused: halted {_show(since)} minutes ago; cooldown is {limits.halt_cooldown_minutes} minutes",
                minutes_since_halt=since,
                limit_minutes=Decimal(limits.halt_cooldown_minutes),
            )
        return refuse("halted", f"{kind} refused: trading is halted until resumed")

    drop, peak = equity_drop(state, limits)
    if drop >= limits.rapid_loss_pct:
        return refuse(
            "rapid_loss",
            f"{kind} refused: equity fell {_show(drop)}% within {limits.rapid_loss_window_minutes} minutes "
            f"(limit {limits.rapid_loss_pct}%)",
            equity_drop_pct=_show(drop),
            peak_equity=peak,
            limit_pct=limits.rapid_loss_pct,
            window_minutes=Decimal(limits.rapid_loss_window_minutes),
        )
    if state.consecutive_losses >= limits.max_consecutive_losses:
        return refuse(
            "consecutive_losses",
            f"{kind} refused: {state.consecutive_losses} losing trades in a row (limit {limits.max_consecutive_losses})",
            limit=Decimal(limits.max_consecutive_losses),
        )

    loss_pct = daily_loss_pct(state)
    today = state.now.date()
    if state.daily_loss_breached_on == today or (
        state.day_start_equity > 0
        and (state.day_start_equity - state.equity) * HUNDRED >= limits.max_daily_loss_pct * state.day_start_equity
    ):
        earlier = state.daily_loss_breached_on == today
        return refuse(
            "max_daily_loss",
            f"{kind} refused: daily loss {_show(loss_pct)}% "
            + ("already breached the limit today" if earlier else f"reached the limit {limits.max_daily_loss_pct}%")
            + "; entries resume on the next UTC day",
            limit_pct=limits.max_daily_loss_pct,
        )

    if state.equity <= 0 or state.cash < limits.min_balance:
        return refuse(
            "min_balance",
            f"{kind} refused: cash {state.cash} (equity {state.equity}) is below the minimum balance {limits.min_balance}",
            limit=limits.min_balance,
        )

    stop = None if action.stop_loss_pct is None else _decimal(action.stop_loss_pct)
    if limits.require_stop_loss and (stop is None or stop <= 0):
        return refuse("stop_loss_required", f"{kind} refused: a stop loss is required and none was given")

    same_direction = state.position_quantity != 0 and (state.position_quantity > 0) == (
        action.action is TradeActionKind.LONG
    )
    if state.position_quantity == 0 and state.open_positions >= limits.max_concurrent_positions:
        return refuse(
            "max_concurrent_positions",
            f"{kind} refused: {state.open_positions} positions open (limit {limits.max_concurrent_positions})",
            limit=Decimal(limits.max_concurrent_positions),
        )

    new_notional = state.equity * requested / HUNDRED * state.leverage
    gross = (state.exposure + new_notional) / state.equity
    if state.leverage > limits.max_leverage or gross > limits.max_leverage:
        return refuse(
            "max_leverage",
            f"{kind} refused: leverage {state.leverage}, gross exposure after the entry "
            f"{_show(gross)}x equity (limit {limits.max_leverage}x)",
            leverage=state.leverage,
            gross_leverage=_show(gross),
            new_notional=new_notional,
            limit=limits.max_leverage,
        )

    held_pct = state.position_notional / state.equity * HUNDRED if same_direction else ZERO
    headroom = max(limits.max_position_size_pct - held_pct, ZERO)
    sizes = {"position_pct": _show(held_pct), "headroom_pct": _show(headroom), "limit_pct": limits.max_position_size_pct}
    if headroom <= 0:
        return refuse(
            "max_position_size",
            f"{kind} refused: the position is already {_show(held_pct)}% of equity "
            f"(limit {limits.max_position_size_pct}%)",
            **sizes,
        )
    if requested > headroom:
        cut = headroom.quantize(_SHOWN, rounding=ROUND_DOWN)
        return verdict(
            True,
            "max_position_size",
            cut,
            f"{kind} approved at {cut}% of equity instead of {requested}% (limit {limits.max_position_size_pct}%)",
            **sizes,
        )
    return verdict(True, "ok", requested, f"{kind} approved at {requested}% of equity", **sizes)


# --- helpers -----------------------------------------------------------------------


def _base_numbers(state: RiskState) -> dict[str, Decimal]:
    return {
        "equity": state.equity,
        "cash": state.cash,
        "day_start_equity": state.day_start_equity,
        "daily_loss_pct": _show(daily_loss_pct(state)),
        "open_positions": Decimal(state.open_positions),
        "position_quantity": state.position_quantity,
        "exposure": state.exposure,
        "consecutive_losses": Decimal(state.consecutive_losses),
    }


def _decimal(value: float | Decimal | int) -> Decimal:
    # TradeAction carries floats (it is the LLM's schema); go through str so 0.1 stays 0.1.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _show(value: Decimal) -> Decimal:
    return value.quantize(_SHOWN, rounding=ROUND_HALF_EVEN)


def _minutes(delta: timedelta) -> Decimal:
    return Decimal(int(delta.total_seconds())) / Decimal(60)
