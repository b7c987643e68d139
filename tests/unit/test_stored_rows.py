"""Column batches stored through a mapper's template (application/stored_rows.py), or one event at a time when
the mapper's stored form has no place to find a varying field in."""

from __future__ import annotations

from application.stored_rows import StoredRows
from infrastructure.eventstore.mapper import EventMapper
from tests.integration.test_hold_decisions import batch


def test_the_mappers_rows_come_from_the_template():
    holds = batch(40)
    rows = StoredRows(EventMapper.to_row)
    assert rows.rows(holds) == [EventMapper.to_row(e) for e in holds.events()]
    assert rows.fallbacks == 0


def test_a_stored_form_without_slots_gets_each_event_encoded_one_by_one():
    def reversed_state(event):  # a stored form (bytes reversed) the template cannot find its fields in
        oid, version, topic, state = EventMapper.to_row(event)
        return oid, version, topic, state[::-1]

    holds = batch(40)
    rows = StoredRows(reversed_state)
    assert rows.rows(holds) == [reversed_state(e) for e in holds.events()]
    assert rows.fallbacks == 1
    assert rows.rows(batch(3)) == [reversed_state(e) for e in batch(3).events()]  # and from then on
