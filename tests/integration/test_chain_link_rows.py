"""The SQLite recorder writes a batch's chain links in one statement (the links as one blob, cut in SQLite): each
notification id gets exactly its link, stored as a 33-byte blob, for batches of one row and of thousands, after
links already in the table; and the log verifies."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from api.bootstrap import open_store
from infrastructure.eventstore.chain import GENESIS, chain_link, verify_chain


@pytest.mark.parametrize("sizes", [(1,), (2, 1), (5000, 1, 3)])
def test_each_notification_gets_its_own_link_as_a_blob(tmp_path, sizes):
    app = open_store(f"sqlite:///{tmp_path}/links.db")
    try:
        rows, made = [], 0
        for size in sizes:
            batch = [(uuid.UUID(int=(made + k + 1) * 7919).hex, 1, "domain.market:CandleClosed", b'{"k":%d}' % (made + k))
                     for k in range(size)]
            made += size
            assert app.recorder.insert_rows(batch) == list(range(len(rows) + 1, len(rows) + size + 1))
            rows += batch
        assert verify_chain(app.recorder).ok
    finally:
        app.close()
    with sqlite3.connect(f"{tmp_path}/links.db") as con:
        stored = con.execute("SELECT notification_id, typeof(link), link FROM stored_events_chain ORDER BY 1").fetchall()
    expected, previous = [], GENESIS
    for nid, row in enumerate(rows, start=1):
        previous = chain_link(previous, nid, *row)
        expected.append((nid, "blob", previous))
    assert stored == expected
