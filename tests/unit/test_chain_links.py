"""The recorders' inlined link computation (next_links) is chain_link, link for link, for every column type."""

from __future__ import annotations

import uuid

from infrastructure.eventstore.chain import GENESIS, chain_link, next_links


def test_next_links_equal_chain_link_for_the_stored_columns_and_any_other_value():
    oid = uuid.UUID("0000abcd-0000-4000-8000-00000000beef")
    rows = [
        (oid.hex, 1, "domain.market:CandleClosed", b'{"a":"1"}'),  # SQLite: the oid as 32 hex digits
        (oid, 2, "domain.market:CandleClosed", b'{"a":"2"}'),  # PostgreSQL: the uuid column
        (oid, 3, "domain.order:OrderFilled", b""),
        ("not-hex", 10**12, "t\u00e9", b"\x00\xff"),
        (oid, 4, "domain.order:OrderFilled", bytearray(b"x")),  # any other type: chain_link itself
        (None, None, None, None),
    ]
    ids = [7, 8, 9, 10, 11, 12]
    expected, previous = [], GENESIS
    for nid, row in zip(ids, rows):
        previous = chain_link(previous, nid, *row)
        expected.append(previous)
    assert next_links(GENESIS, ids, rows) == expected
    # the same stream id as text or as uuid gives the same link (a log moved between the backends keeps its links)
    assert next_links(GENESIS, [1], [rows[0]]) == next_links(GENESIS, [1], [(oid, 1, rows[0][2], rows[0][3])])


def test_next_links_keep_apart_values_that_compare_equal_across_types():
    # next_links builds a version's and topic's fields once per batch: a bool version (True == 1), a float
    # version or a text subclass must still get chain_link's own fields, not the cached ones of an equal value.
    class Topic(str):
        pass

    oid = uuid.UUID("0000abcd-0000-4000-8000-00000000beef").hex
    rows = [(oid, 1, "t", b"s"), (oid, True, "t", b"s"), (oid, 1.0, "t", b"s"), (oid, 1, Topic("t"), b"s"),
            (oid, 1, "t", b"s")]
    expected, previous = [], GENESIS
    for nid, row in enumerate(rows, start=1):
        previous = chain_link(previous, nid, *row)
        expected.append(previous)
    assert next_links(GENESIS, range(1, 6), rows) == expected
