"""Events validate at construction and name the bad field and value."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from domain.decision import DecisionMade, RiskAssessed
from domain.events import DomainEvent, EventMeta, EventValidationError, event_classes
from domain.market import CandleClosed
from domain.order import OrderFilled

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
META = EventMeta(T0, actor="test")


def candle(**changes):
    fields = dict(product="BTC-USD", granularity="1h", start=T0, open="100", high="110", low="90", close="105", volume="3")
    fields.update(changes)
    return CandleClosed.build(uuid.uuid4(), 1, META, **fields)


def test_candle_with_high_below_low_is_refused_naming_high():
    with pytest.raises(EventValidationError) as info:
        candle(high="80", low="90", open="85", close="85")
    assert "high=Decimal('80')" in str(info.value)
    assert "below low 90" in str(info.value)


@pytest.mark.parametrize("bad", ["0", "-5", "NaN", "inf", "abc"])
def test_candle_with_bad_price_is_refused_naming_field_and_value(bad):
    with pytest.raises(EventValidationError) as info:
        candle(close=bad)
    assert "close=" in str(info.value) and bad in str(info.value)


def test_float_nan_price_is_refused():
    with pytest.raises(EventValidationError, match="close"):
        candle(close=float("nan"))


def test_naive_datetime_is_refused_naming_the_field():
    with pytest.raises(EventValidationError) as info:
        candle(start=datetime(2024, 1, 1))
    assert "start" in str(info.value) and "naive" in str(info.value)


def test_non_utc_datetime_is_normalised_to_utc():
    plus_two = timezone(timedelta(hours=2))
    event = candle(start=datetime(2024, 1, 1, 2, tzinfo=plus_two))
    assert event.start == T0 and event.start.tzinfo is timezone.utc


def test_candle_off_the_granularity_grid_is_refused():
    with pytest.raises(EventValidationError, match="start.*not aligned"):
        candle(start=T0 + timedelta(minutes=30))


def decision(**changes):
    fields = dict(strategy="rules", product="BTC-USD", candle_start=T0, action="LONG", size_pct="10", rationale="x")
    fields.update(changes)
    return DecisionMade.build(uuid.uuid4(), 1, META, **fields)


def test_unknown_action_is_refused_naming_it():
    with pytest.raises(EventValidationError) as info:
        decision(action="BUY_EVERYTHING")
    assert "action='BUY_EVERYTHING'" in str(info.value)


@pytest.mark.parametrize("bad", ["-1", "100.01", "250"])
def test_size_pct_outside_0_to_100_is_refused(bad):
    with pytest.raises(EventValidationError) as info:
        decision(size_pct=bad)
    assert "size_pct" in str(info.value) and bad in str(info.value)


def test_negative_fee_is_refused_naming_fee():
    with pytest.raises(EventValidationError) as info:
        OrderFilled.build(
            uuid.uuid4(), 2, META, fill_id="f", quantity="1", price="100", fee="-0.01",
            fee_currency="USD", liquidity="TAKER", cumulative_quantity="1",
        )
    assert "fee=" in str(info.value) and "-0.01" in str(info.value)


def test_events_are_immutable():
    event = candle()
    with pytest.raises(ValidationError):
        event.close = Decimal("1")  # type: ignore[misc]


def test_unknown_field_is_refused():
    with pytest.raises(EventValidationError, match="colour"):
        candle(colour="red")


def test_event_id_is_derived_from_stream_position():
    a = candle()
    b = CandleClosed.build(a.originator_id, 1, META, **a.payload())
    assert a.event_id == b.event_id
    assert a.event_id != CandleClosed.build(uuid.uuid4(), 1, META, **a.payload()).event_id


def test_money_fields_are_decimal_and_serialise_as_strings():
    event = candle(close="105.123456789")
    assert event.close == Decimal("105.123456789")
    assert '"close":"105.123456789"' in event.model_dump_json()


def test_risk_numbers_keep_decimals_exactly():
    event = RiskAssessed.build(
        uuid.uuid4(), 2, META, approved=False, rule="max_daily_loss", requested_size_pct="10",
        approved_size_pct="0", message="limit hit", numbers={"daily_loss_pct": "3.0001"},
    )
    assert event.numbers["daily_loss_pct"] == Decimal("3.0001")


def test_catalogue_lists_every_event_of_the_design():
    names = set(event_classes())
    expected = {
        "CandleClosed", "CandleCorrected", "DecisionMade", "DecisionFailed", "RiskAssessed",
        "OrderPlaced", "OrderSubmitted", "OrderAccepted", "OrderPartiallyFilled", "OrderFilled",
        "OrderCancelled", "OrderRejected", "OrderExpired", "FundsDeposited", "FundsWithdrawn",
        "BalanceReconciled", "ConfigChanged", "ConfigBaselineSet", "RunStarted", "RunEnded",
        "TradingHalted", "TradingResumed", "IncidentOpened", "IncidentResolved",
    }
    assert expected <= names
    assert all(issubclass(cls, DomainEvent) for cls in event_classes().values())
