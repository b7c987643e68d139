"""The risk rules: each fires with its name and the numbers it compared."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from domain.decision import TradeAction, TradeActionKind
from domain.events import FieldProblem
from domain.risk import (
    RULES,
    RiskLimits,
    RiskState,
    assess,
    emergency_stop,
    halt_lapsed,
    position_size,
)

NOW = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)
LIMITS = RiskLimits()


def action(kind="LONG", size=10.0, stop=2.0, take=4.0) -> TradeAction:
    return TradeAction(
        action=TradeActionKind(kind), size_pct=size, stop_loss_pct=stop, take_profit_pct=take, rationale="test"
    )


def state(**overrides) -> RiskState:
    values = dict(now=NOW, equity=D("10000"), cash=D("10000"), day_start_equity=D("10000"))
    values.update(overrides)
    return RiskState(**values)


def test_long_within_every_limit_is_approved_at_the_requested_size():
    verdict = assess(action(size=10.0), state(), LIMITS)
    assert (verdict.approved, verdict.rule) == (True, "ok")
    assert verdict.requested_size_pct == D("10.0") == verdict.approved_size_pct
    assert verdict.numbers["equity"] == D("10000")
    assert verdict.numbers["limit_pct"] == D("25")


def test_long_above_the_size_cap_is_approved_cut_to_the_cap():
    verdict = assess(action(size=40.0), state(), LIMITS)
    assert (verdict.approved, verdict.rule) == (True, "max_position_size")
    assert verdict.requested_size_pct == D("40.0")
    assert verdict.approved_size_pct == D("25")
    assert verdict.numbers["headroom_pct"] == D("25")


def test_adding_to_a_long_is_cut_to_the_headroom_left_by_the_position():
    current = state(position_quantity=D("0.05"), position_notional=D("2000"), open_positions=1, exposure=D("2000"))
    verdict = assess(action(size=10.0), current, LIMITS)
    assert (verdict.approved, verdict.rule, verdict.approved_size_pct) == (True, "max_position_size", D("5"))
    assert verdict.numbers["position_pct"] == D("20")


def test_adding_to_a_long_already_at_the_cap_is_refused():
    current = state(position_quantity=D("0.1"), position_notional=D("2500"), open_positions=1, exposure=D("2500"))
    verdict = assess(action(size=5.0), current, LIMITS)
    assert (verdict.approved, verdict.rule, verdict.approved_size_pct) == (False, "max_position_size", D("0"))


def test_hold_is_approved_with_size_zero():
    verdict = assess(action("HOLD", size=0.0, stop=None), state(halted=True), LIMITS)
    assert (verdict.approved, verdict.rule, verdict.approved_size_pct) == (True, "hold", D("0"))


def test_close_with_a_position_is_approved_even_when_halted_and_past_the_daily_loss():
    current = state(
        position_quantity=D("0.1"), open_positions=1, equity=D("9000"), halted=True, halted_at=NOW,
        daily_loss_breached_on=NOW.date(),
    )
    verdict = assess(action("CLOSE", size=0.0, stop=None), current, LIMITS)
    assert (verdict.approved, verdict.rule) == (True, "close")


def test_close_without_a_position_is_refused_as_no_position():
    verdict = assess(action("CLOSE", size=0.0, stop=None), state(), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "no_position")


def test_short_is_refused_when_shorts_are_disabled():
    verdict = assess(action("SHORT"), state(), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "shorts_disabled")


def test_short_is_approved_when_shorts_are_allowed():
    verdict = assess(action("SHORT"), state(), replace(LIMITS, allow_shorts=True))
    assert (verdict.approved, verdict.rule) == (True, "ok")


def test_entry_with_zero_size_is_refused():
    assert assess(action(size=0.0), state(), LIMITS).rule == "no_size"


def test_daily_loss_at_the_limit_refuses_entries_with_the_numbers():
    verdict = assess(action(), state(equity=D("9700"), cash=D("9700")), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "max_daily_loss")
    assert verdict.numbers["daily_loss_pct"] == D("3")
    assert verdict.numbers["limit_pct"] == D("3")
    assert verdict.numbers["day_start_equity"] == D("10000")
    assert verdict.numbers["equity"] == D("9700")


def test_daily_loss_just_under_the_limit_allows_entries():
    verdict = assess(action(), state(equity=D("9700.01"), cash=D("9700.01")), LIMITS)
    assert verdict.approved


def test_daily_loss_breach_keeps_blocking_entries_after_equity_recovers_the_same_day():
    recovered = state(daily_loss_breached_on=NOW.date())
    verdict = assess(action(), recovered, LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "max_daily_loss")
    assert "already breached" in verdict.message


def test_daily_loss_breach_of_yesterday_does_not_block_the_next_utc_day():
    next_day = state(now=NOW + timedelta(days=1), daily_loss_breached_on=NOW.date())
    assert assess(action(), next_day, LIMITS).rule == "ok"


def test_halted_within_cooldown_refuses_entries_as_halt_cooldown():
    halted = state(halted=True, halted_at=NOW - timedelta(minutes=30))
    verdict = assess(action(), halted, LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "halt_cooldown")
    assert verdict.numbers["minutes_since_halt"] == D("30")
    assert verdict.numbers["limit_minutes"] == D("60")
    assert not halt_lapsed(halted, LIMITS)


def test_halted_after_cooldown_still_refuses_until_resumed_and_reports_lapsed():
    halted = state(halted=True, halted_at=NOW - timedelta(minutes=60))
    assert assess(action(), halted, LIMITS).rule == "halted"
    assert halt_lapsed(halted, LIMITS)


def test_halted_without_halt_time_refuses_as_halted():
    verdict = assess(action(), state(halted=True), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "halted")


def test_cash_below_min_balance_refuses_entries():
    verdict = assess(action(), state(cash=D("99.99"), equity=D("10000")), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "min_balance")
    assert verdict.numbers["limit"] == D("100") and verdict.numbers["cash"] == D("99.99")


def test_entry_without_stop_loss_is_refused_when_required():
    verdict = assess(action(stop=None), state(), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "stop_loss_required")
    assert assess(action(stop=None), state(), replace(LIMITS, require_stop_loss=False)).approved


def test_new_position_beyond_max_concurrent_positions_is_refused():
    busy = state(open_positions=1, exposure=D("1000"))  # a position in another product
    verdict = assess(action(), busy, LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "max_concurrent_positions")
    assert verdict.numbers["limit"] == D("1") and verdict.numbers["open_positions"] == D("1")


def test_leverage_above_the_limit_is_refused():
    verdict = assess(action(), state(leverage=D("2")), LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "max_leverage")
    assert verdict.numbers["leverage"] == D("2") and verdict.numbers["limit"] == D("1")


def test_gross_exposure_past_max_leverage_is_refused():
    limits = replace(LIMITS, max_concurrent_positions=3)
    verdict = assess(action(size=20.0), state(open_positions=2, exposure=D("9000")), limits)
    assert (verdict.approved, verdict.rule) == (False, "max_leverage")
    assert verdict.numbers["gross_leverage"] == D("1.1")


def test_rapid_equity_drop_refuses_entries_and_calls_an_emergency_stop():
    points = ((NOW - timedelta(minutes=50), D("10000")), (NOW - timedelta(minutes=20), D("9800")))
    falling = state(equity=D("9500"), cash=D("9500"), day_start_equity=D("9000"), recent_equity=points)
    verdict = assess(action(), falling, LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "rapid_loss")
    assert verdict.numbers["equity_drop_pct"] == D("5") and verdict.numbers["peak_equity"] == D("10000")
    reason = emergency_stop(falling, LIMITS)
    assert reason is not None and reason.startswith("rapid_loss")


def test_equity_drop_outside_the_window_is_not_a_rapid_loss():
    old = ((NOW - timedelta(minutes=61), D("10000")),)
    calm = state(equity=D("9500"), cash=D("9500"), day_start_equity=D("9500"), recent_equity=old)
    assert emergency_stop(calm, LIMITS) is None
    assert assess(action(), calm, LIMITS).approved


def test_loss_streak_at_the_limit_calls_an_emergency_stop_and_refuses_entries():
    streak = state(consecutive_losses=5)
    reason = emergency_stop(streak, LIMITS)
    assert reason is not None and reason.startswith("consecutive_losses")
    verdict = assess(action(), streak, LIMITS)
    assert (verdict.approved, verdict.rule) == (False, "consecutive_losses")
    assert emergency_stop(state(consecutive_losses=4), LIMITS) is None


def test_emergency_stop_is_quiet_when_already_halted():
    assert emergency_stop(state(consecutive_losses=9, halted=True, halted_at=NOW), LIMITS) is None


def test_every_verdict_rule_is_catalogued_and_numbers_are_decimals():
    verdicts = [
        assess(action(size=40.0), state(), LIMITS),
        assess(action("SHORT"), state(), LIMITS),
        assess(action(), state(equity=D("9000"), cash=D("9000")), LIMITS),
    ]
    for verdict in verdicts:
        assert verdict.rule in RULES
        assert all(isinstance(value, D) for value in verdict.numbers.values())


def test_verdict_fields_build_a_risk_assessed_event():
    from domain.decision import RiskAssessed

    verdict = assess(action(size=40.0), state(), LIMITS)
    event = RiskAssessed(
        originator_id="00000000-0000-0000-0000-000000000001", originator_version=2, occurred_at=NOW,
        **verdict.event_fields(),
    )
    assert event.approved_size_pct == D("25") and event.rule == "max_position_size"


def test_position_size_rounds_quantity_down_to_a_satoshi():
    assert position_size(D("10000"), D("40000"), D("25")) == D("0.0625")
    assert position_size(D("10000"), D("30000"), D("10")) == D("0.03333333")
    assert position_size(D("10000"), D("40000"), D("25"), D("2")) == D("0.125")
    assert position_size(D("0"), D("40000"), D("25")) == D("0")


def test_position_size_at_a_non_positive_price_is_refused():
    with pytest.raises(FieldProblem):
        position_size(D("10000"), D("0"), D("25"))


def test_naive_time_in_risk_state_is_refused():
    with pytest.raises(FieldProblem):
        state(now=datetime(2024, 1, 1))


def test_float_limits_are_refused():
    with pytest.raises(FieldProblem):
        RiskLimits(max_daily_loss_pct=3.0)
