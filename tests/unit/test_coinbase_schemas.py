"""Venue payloads parsed at the boundary; SDK/transport errors translated into ours."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests
from tenacity import RetryCallState

from application.ports import (
    VenueAuthError,
    VenueClientError,
    VenueDataError,
    VenueRateLimited,
    VenueServerError,
    VenueUnavailable,
)
from domain.order import Liquidity, OrderSide, client_order_id
from infrastructure.venues.coinbase.errors import RetryPolicy, retrying, translate
from infrastructure.venues.coinbase.schemas import (
    create_order_failure,
    order_id_of,
    parse_balances,
    parse_candle,
    parse_fill,
    parse_time,
    venue_granularity,
)


def http_error(status: int, text: str = "{}", headers: dict | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response._content = text.encode()
    response.headers.update(headers or {})
    return requests.HTTPError(f"{status}", response=response)


def test_a_candle_is_parsed_with_exact_decimals_and_utc_start():
    c = parse_candle({"start": "1700000000", "open": "37000.01", "high": "37100", "low": "36900.5",
                      "close": "37050", "volume": "12.34567891"}, "BTC-USD", "1h")
    assert c.start == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert c.open == Decimal("37000.01") and c.volume == Decimal("12.34567891")


@pytest.mark.parametrize("field,value,why", [("close", "abc", "not a number"), ("high", None, "missing"),
                                             ("low", "-1", "out of range"), ("open", "0", "must be > 0")])
def test_a_corrupt_candle_is_refused_naming_the_field(field, value, why):
    payload = {"start": "1700000000", "open": "10", "high": "12", "low": "9", "close": "11", "volume": "1"}
    payload[field] = value
    with pytest.raises(VenueDataError, match=f"{field}.*{why}|{why}.*{field}|{field}"):
        parse_candle(payload, "BTC-USD", "1h")


def test_high_below_the_close_is_refused():
    with pytest.raises(VenueDataError, match="do not bound"):
        parse_candle({"start": "1700000000", "open": "10", "high": "10.5", "low": "9", "close": "11", "volume": "1"},
                     "BTC-USD", "1h")


def test_venue_times_with_nanoseconds_parse():
    assert parse_time("2023-06-23T20:31:26.122969572Z", "t") == datetime(2023, 6, 23, 20, 31, 26, 122969,
                                                                          tzinfo=timezone.utc)


def test_a_fill_is_parsed_into_our_terms():
    fill = parse_fill({"trade_id": "t1", "order_id": "v1", "trade_time": "2024-01-01T00:00:00Z", "price": "100.5",
                       "size": "0.1", "commission": "0.06", "product_id": "BTC-USD", "liquidity_indicator": "MAKER",
                       "side": "SELL"})
    assert (fill.fill_id, fill.side, fill.liquidity, fill.fee_currency) == ("t1", OrderSide.SELL, Liquidity.MAKER, "USD")
    assert fill.quantity == Decimal("0.1") and fill.fee == Decimal("0.06")


def test_balances_sum_available_and_hold():
    assert parse_balances([{"currency": "USD", "available_balance": {"value": "90.5"}, "hold": {"value": "9.5"}},
                           {"currency": "BTC", "available_balance": {"value": "0.1"}}]) == {
        "USD": Decimal("100.0"), "BTC": Decimal("0.1")}


def test_client_order_ids_map_back_to_our_order_ids_only():
    order_id = uuid.uuid4()
    assert order_id_of(client_order_id(order_id)) == order_id
    assert order_id_of("someone-else") is None and order_id_of("tc-nothex") is None


def test_a_refused_order_reports_the_venues_words():
    assert "INSUFFICIENT_FUND" in create_order_failure(
        {"success": False, "error_response": {"error": "INSUFFICIENT_FUND", "message": "Insufficient balance"}})


def test_unknown_granularity_is_refused():
    assert venue_granularity("1h") == "ONE_HOUR"
    with pytest.raises(VenueDataError, match="3h"):
        venue_granularity("3h")


@pytest.mark.parametrize("status,kind,retryable", [(400, VenueClientError, False), (401, VenueAuthError, False),
                                                    (429, VenueRateLimited, True), (500, VenueServerError, True),
                                                    (503, VenueServerError, True)])
def test_http_errors_split_into_client_and_server_errors(status, kind, retryable):
    error = translate(http_error(status), "doing it")
    assert type(error) is kind and error.retryable is retryable and f"HTTP {status}" in str(error)


def test_no_answer_is_retryable_unavailability():
    error = translate(requests.ConnectionError("refused"), "doing it")
    assert isinstance(error, VenueUnavailable) and error.retryable


def test_a_429_waits_what_the_venue_asks_and_others_back_off():
    policy = RetryPolicy(initial_wait=0.5, max_wait=4)
    limited = translate(http_error(429, headers={"Retry-After": "7"}), "x")
    assert limited.retry_after == 7.0

    class Outcome:
        def __init__(self, exc):
            self._exc = exc

        def exception(self):
            return self._exc

    def state(exc, attempt):
        s = RetryCallState(None, None, (), {})
        s.outcome, s.attempt_number = Outcome(exc), attempt
        return s

    assert policy.wait(state(limited, 1)) == 7.0
    assert [policy.wait(state(VenueServerError("x"), n)) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4, 4]


def test_retrying_retries_server_errors_but_not_client_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise http_error(502)
        return "ok"

    assert retrying(RetryPolicy(attempts=4, initial_wait=0.001), "x", flaky) == "ok" and len(calls) == 3
    calls.clear()

    def refused():
        calls.append(1)
        raise http_error(404)

    with pytest.raises(VenueClientError):
        retrying(RetryPolicy(attempts=4, initial_wait=0.001), "x", refused)
    assert len(calls) == 1
