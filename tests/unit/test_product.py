"""Product specs: ids, safe rounding of prices and sizes, minimums, and the spec's event."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from domain.events import EventMeta
from domain.product import (
    ROUND_DOWN, ROUND_UP, InvalidProduct, ProductListing, ProductSpec, ProductSpecRecorded, check_minimums,
    limit_rounding, parse_product_id, product_stream_id, protective_rounding, round_price, round_quantity,
)

SUB_CENT = ProductSpec.for_product("XLM-USD", D("0.000001"), D("1"), D("1"), D("1"))
ETH_BTC = ProductSpec.for_product("ETH-BTC", D("0.00001"), D("0.00000001"), D("0.00022"), D("0.000016"))
AT = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), "import")


@pytest.mark.parametrize("text, parts", [("BTC-USD", ("BTC", "USD")), ("ETH-BTC", ("ETH", "BTC")),
                                         ("1INCH-EUR", ("1INCH", "EUR"))])
def test_product_ids_are_base_dash_quote(text, parts):
    assert parse_product_id(text) == parts


@pytest.mark.parametrize("text", ["", "btc-usd", "BTCUSD", "BTC-", "-USD", "BTC-USD-X", "BTC-BTC", None])
def test_bad_product_ids_are_refused_with_the_expected_shape(text):
    with pytest.raises(InvalidProduct, match="BASE-QUOTE"):
        parse_product_id(text)


def test_protective_prices_round_toward_the_entry():
    # long: stop below the entry rounds up, target above rounds down; a short mirrors it
    assert protective_rounding(True, "stop_loss") == ROUND_UP
    assert protective_rounding(True, "take_profit") == ROUND_DOWN
    assert protective_rounding(False, "stop_loss") == ROUND_DOWN
    assert protective_rounding(False, "take_profit") == ROUND_UP
    assert limit_rounding(buy=True) == ROUND_DOWN and limit_rounding(buy=False) == ROUND_UP


def test_sub_cent_prices_keep_their_digits():
    entry = D("0.0016")
    stop = round_price(entry * D("0.98"), SUB_CENT, protective_rounding(True, "stop_loss"))
    target = round_price(entry * D("1.04"), SUB_CENT, protective_rounding(True, "take_profit"))
    assert stop == D("0.001568") and target == D("0.001664") and stop > 0
    assert round_price(D("0.00156849"), SUB_CENT, ROUND_UP) == D("0.001569")
    assert round_price(D("0.00156849"), SUB_CENT, ROUND_DOWN) == D("0.001568")
    assert round_price(D("101.237"), ProductSpec.for_product("BTC-USD", D("0.01"), D("0.00000001")), ROUND_DOWN) == D("101.23")
    with pytest.raises(ValueError):
        round_price(D("1"), SUB_CENT, "ROUND_HALF_UP")


def test_quantities_round_down_and_minimums_name_the_rule():
    assert round_quantity(D("0.123456789"), ETH_BTC) == D("0.12345678")
    assert round_quantity(D("1234.9"), SUB_CENT) == D("1234")
    assert check_minimums(D("0.0001"), D("0.05"), ETH_BTC) == "size 0.0001 ETH is below the minimum 0.00022 (min_base_size)"
    assert "min_quote_funds" in check_minimums(D("0.0003"), D("0.05"), ETH_BTC)
    assert check_minimums(D("0.5"), D("0.05"), ETH_BTC) is None
    assert "rounds to nothing" in check_minimums(D("0"), D("0.05"), ETH_BTC)


def test_spec_is_recorded_once_and_again_only_when_it_changes():
    listing = ProductListing.first(ETH_BTC, AT)
    (first,) = listing.collect_events()
    assert isinstance(first, ProductSpecRecorded) and first.originator_id == product_stream_id("ETH-BTC")
    assert first.spec() == ETH_BTC and first.quote_currency == "BTC"
    assert listing.record(ETH_BTC, AT) is False and listing.collect_events() == []
    finer = ProductSpec.for_product("ETH-BTC", D("0.000001"), D("0.00000001"), D("0.00022"), D("0.000016"))
    assert listing.record(finer, AT) is True
    (second,) = listing.collect_events()
    assert second.originator_version == 2
    replayed = second.mutate(first.mutate(None))
    assert replayed.spec == finer and replayed.version == 2


def test_spec_refuses_a_currency_that_is_not_in_the_id():
    with pytest.raises(InvalidProduct):
        ProductSpec("ETH-BTC", "ETH", "USD", D("0.01"), D("0.01"))
    with pytest.raises(InvalidProduct):
        ProductSpec.for_product("ETH-BTC", D("0"), D("0.01"))
    assert uuid.UUID(str(product_stream_id("ETH-BTC"))) == product_stream_id("ETH-BTC")
