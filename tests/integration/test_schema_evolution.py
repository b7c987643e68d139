"""Old logs stay readable: upcasting an older event schema, and a moved event class."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic, register_topic

from api.bootstrap import open_store
from domain.events import DomainEvent, Money
from domain.market import CandleClosed
from infrastructure.eventstore.chain import verify_chain


class FeeScheduleNoted(DomainEvent):
    """Test event at schema version 2: v1 had `fee_pct`, v2 has `fee_bps` and `currency`."""

    class_version = 2
    fee_bps: Money
    currency: str

    @staticmethod
    def upcast_v1_v2(state: dict) -> dict:
        state["fee_bps"] = str(Decimal(state.pop("fee_pct")) * 100)
        state.setdefault("currency", "USD")
        return state


def test_log_written_by_older_event_version_loads_through_upcaster(tmp_path):
    app = open_store(f"sqlite:///{tmp_path}/e.db")
    stream = uuid.uuid4()
    # What version 1 of the class wrote: no class_version key, the old field.
    v1_state = json.dumps(
        {"originator_id": str(stream), "originator_version": 1, "occurred_at": "2024-01-01T00:00:00Z",
         "actor": "system", "correlation_id": None, "causation_id": None, "run_id": None, "fee_pct": "0.6"}
    ).encode()
    app.recorder.insert_events([StoredEvent(stream, 1, get_topic(FeeScheduleNoted), v1_state)])
    # And what version 2 writes today.
    current = FeeScheduleNoted(originator_id=stream, originator_version=2, occurred_at="2024-01-02T00:00:00Z", fee_bps="40", currency="USD")
    app.save(current)
    stored_v2 = app.recorder.select_events(stream)[1].state
    assert stored_v2.startswith(b'{"class_version":2,')
    old, new = [e.event for e in app.read_log(0, 10)]
    assert old.fee_bps == Decimal("60.0") and old.currency == "USD"
    assert new.fee_bps == Decimal("40")
    assert verify_chain(app.recorder).ok
    app.close()


def test_event_class_moved_to_another_module_still_loads_its_old_events(tmp_path):
    old_topic = "tradecore_legacy.market_events:BarClosed"
    register_topic(old_topic, CandleClosed)
    app = open_store(f"sqlite:///{tmp_path}/e.db")
    stream = uuid.uuid4()
    state = json.dumps(
        {"originator_id": str(stream), "originator_version": 1, "occurred_at": "2024-01-01T01:00:00Z",
         "actor": "system", "correlation_id": None, "causation_id": None, "run_id": None,
         "product": "BTC-USD", "granularity": "1h", "start": "2024-01-01T00:00:00Z",
         "open": "100", "high": "110", "low": "90", "close": "105", "volume": "2"}
    ).encode()
    app.recorder.insert_events([StoredEvent(stream, 1, old_topic, state)])
    (logged,) = app.read_log(0, 10)
    assert logged.topic == old_topic
    assert isinstance(logged.event, CandleClosed) and logged.event.close == Decimal("105")
    app.close()
