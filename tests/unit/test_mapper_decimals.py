"""The decoder's decimals: create_decimal of an exact context, and Decimal itself whenever that signals anything."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import orjson
import pytest

from domain.events import EventMeta
from domain.market import CandleClosed
from infrastructure.eventstore.mapper import EventMapper, _fast_decoder

META = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), actor="t")
COMMON = ["100.10", "0", "-0", "0.00", "1E+5", "1E-8", "0E-8", "12.5", "-3.250", "99999999999999999999999999999999999999.123456789",
          "0.000000000000000000000000000000000000001", "123456789012345678901234567890", "1E+999999999999999999",
          "1.5E-999999999999999999", "\u0661\u0662\u0663"]
UNUSUAL = ["1_000.5", " 7.5", "7.5 "]  # read by Decimal(), not by create_decimal


def state_with(text: str) -> bytes:
    event = CandleClosed.build(uuid.uuid4(), 1, META, product="BTC-USD", granularity="1h",
                               start=datetime(2024, 1, 1, tzinfo=timezone.utc), open="1", high="2", low="0.5", close="1.5", volume="3")
    data = orjson.loads(EventMapper().to_stored_event(event).state)
    data["open"] = data["volume"] = text
    return orjson.dumps(data)


def fresh_decoder():
    return _fast_decoder.__wrapped__(CandleClosed)  # not the cached one: its reference is replaced below


@pytest.mark.parametrize("text", COMMON + UNUSUAL)
def test_each_decimal_decodes_to_what_decimal_of_its_text_gives(text):
    event = fresh_decoder()(state_with(text))
    for value in (event.open, event.volume):
        assert type(value) is Decimal
        assert value.as_tuple() == Decimal(text).as_tuple() and str(value) == str(Decimal(text))


@pytest.mark.parametrize("text", COMMON)
def test_the_text_pydantic_writes_takes_the_fast_path(text):
    decode = fresh_decoder()

    def refuse(state):
        raise AssertionError("the reference decoder was called")

    decode.__globals__["reference"] = refuse
    assert decode(state_with(text)).open.as_tuple() == Decimal(text).as_tuple()


@pytest.mark.parametrize("text", UNUSUAL)
def test_text_create_decimal_refuses_is_decoded_again_by_the_reference(text):
    decode = fresh_decoder()
    called = []
    reference = decode.__globals__["reference"]
    decode.__globals__["reference"] = lambda state: called.append(state) or reference(state)
    assert decode(state_with(text)).open.as_tuple() == Decimal(text).as_tuple()
    assert len(called) == 1


@pytest.mark.parametrize("text", ["ten", "1e999999999999999999999"])
def test_text_decimal_refuses_raises_what_decimal_raises(text):
    with pytest.raises(InvalidOperation):
        Decimal(text)
    with pytest.raises(InvalidOperation):
        fresh_decoder()(state_with(text))
