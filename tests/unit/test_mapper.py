"""The lean mapper: every event class decodes on the fast path, to exactly what validation gives."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import orjson
import pytest
from eventsourcing.persistence import MapperDeserialisationError
from eventsourcing.utils import get_topic
from pydantic import ValidationError

import domain.account  # noqa: F401 - register every event class
import domain.config  # noqa: F401
import domain.control  # noqa: F401
import domain.decision  # noqa: F401
import domain.market  # noqa: F401
import domain.order  # noqa: F401
from domain.decision import DecisionMade, RiskAssessed
from domain.events import EventMeta, event_classes
from domain.market import CandleClosed
from domain.order import OrderPlaced
from infrastructure.eventstore.mapper import EventMapper, _fast_decoder, decode_event

META = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), actor="t", run_id=uuid.uuid4())


def test_every_domain_event_class_has_a_fast_decoder():
    slow = [n for n, c in event_classes().items() if c.__module__.startswith("domain.") and _fast_decoder(c) is None]
    assert slow == []


def roundtrip(event):
    mapper = EventMapper()
    stored = mapper.to_stored_event(event)
    fast = mapper.to_domain_event(stored)
    validated = type(event).model_validate_json(stored.state)
    return fast, validated


def test_fast_decode_equals_validated_decode_for_representative_events():
    samples = [
        CandleClosed.build(uuid.uuid4(), 1, META, product="BTC-USD", granularity="1h", start=datetime(2024, 1, 1, tzinfo=timezone.utc),
                           open="100.10", high="110", low="90", close="105.5", volume="0"),
        DecisionMade.build(uuid.uuid4(), 1, META, strategy="llm", product="BTC-USD", candle_start=datetime(2024, 1, 1, tzinfo=timezone.utc),
                           inputs={"wt1": -53.2, "buy_signal": True, "note": "x", "gap": None, "n": 3}, action="LONG",
                           size_pct="10", stop_loss_pct="2", rationale="cross up", cost="0.00012"),
        RiskAssessed.build(uuid.uuid4(), 2, META, approved=True, rule="ok", requested_size_pct="10", approved_size_pct="10",
                           message="fine", numbers={"equity": "10000.5"}),
        OrderPlaced.build(uuid.uuid4(), 1, META, product="BTC-USD", side="BUY", order_type="LIMIT", quantity="0.5",
                          limit_price="99.5", client_order_id="tc-1"),
    ]
    for event in samples:
        fast, validated = roundtrip(event)
        assert fast == validated == event
        assert type(fast.occurred_at.tzinfo) is type(timezone.utc)
    assert roundtrip(samples[0])[0].open == Decimal("100.10")


def candle_state(**fields: str) -> bytes:
    event = CandleClosed.build(uuid.uuid4(), 1, META, product="BTC-USD", granularity="1h", start=datetime(2024, 1, 1, tzinfo=timezone.utc),
                               open="1", high="2", low="0.5", close="1.5", volume="3")
    data = orjson.loads(EventMapper().to_stored_event(event).state)
    data.update(fields)
    return orjson.dumps(data)


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("00005e0b-e100-85ba-bef7-ade294c4c78b"),
                                   *(uuid.uuid4() for _ in range(5))])
def test_a_uuid_decodes_to_the_uuid_its_text_names(value):
    for text in (str(value), str(value).upper()):
        state = candle_state(originator_id=text, correlation_id=text, causation_id=None)
        event = decode_event(get_topic(CandleClosed), state)
        for decoded in (event.originator_id, event.correlation_id):
            assert type(decoded) is uuid.UUID and decoded == value and str(decoded) == str(value)
            assert decoded.is_safe is uuid.SafeUUID.unknown
        assert event.causation_id is None
        assert event == CandleClosed.model_validate_json(state)


@pytest.mark.parametrize("text", ["-00005e0be10085babef7ade294c4c78b", "00005e0b--e100-85ba-bef7-ade294c4c78b",
                                  "00005e0b-e100-85ba-bef7-ade294c4c78b-", "00005e0b-e100-85ba-bef7-ade294c4c78g"])
def test_a_uuid_text_with_a_dash_not_between_two_digits_is_refused_as_validation_refuses_it(text):
    for state in (candle_state(originator_id=text), candle_state(run_id=text)):
        with pytest.raises(MapperDeserialisationError):
            decode_event(get_topic(CandleClosed), state)
        with pytest.raises(ValidationError):
            CandleClosed.model_validate_json(state)


def test_iter_decoded_pages_decodes_each_row_by_its_own_topic_and_closes_the_pages_however_it_ends():
    from domain.control import IncidentOpened
    from infrastructure.eventstore.mapper import iter_decoded_pages

    candle = CandleClosed.build(uuid.uuid4(), 1, META, product="BTC-USD", granularity="1h", start=datetime(2024, 1, 1, tzinfo=timezone.utc),
                                open="1", high="2", low="0.5", close="1.5", volume="3")
    incident = IncidentOpened.build(uuid.uuid4(), 1, META, severity="P3", kind="drill", details="x")
    mapper = EventMapper()
    stored = {e: mapper.to_stored_event(e) for e in (candle, incident)}
    # topics as new string objects, as a database gives them; the topic changes within a page and across pages
    order = [candle, candle, incident, incident, candle, incident, candle, candle]
    rows = [(i + 1, "".join(stored[e].topic), stored[e].state) for i, e in enumerate(order)]
    closed = []

    def pages(rows, size=3):
        try:
            for start in range(0, len(rows), size):
                yield rows[start:start + size]
        finally:
            closed.append(True)

    made = list(iter_decoded_pages(pages(rows), lambda nid, topic, event: (nid, topic, event)))
    assert made == [(i + 1, stored[e].topic, e) for i, e in enumerate(order)] and closed == [True]

    events = iter_decoded_pages(pages(rows), lambda nid, topic, event: event)
    assert [next(events) for _ in range(4)] == order[:4]
    events.close()
    assert closed == [True, True]

    bad = rows[:5] + [(6, rows[5][1], b'{"not": "this event"')] + rows[6:]
    seen = []
    with pytest.raises(MapperDeserialisationError, match="cannot decode a stored"):
        for event in iter_decoded_pages(pages(bad), lambda nid, topic, event: event):
            seen.append(event)
    assert seen == order[:5] and closed == [True, True, True]
