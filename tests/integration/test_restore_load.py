"""A SQLite restore stores every archived row and link as it was: batches of consecutive ids with version 2 links
(their links written as one blob cut in SQLite), ids with gaps, version 1 links of older logs (one bound row each)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api.bootstrap import open_store
from infrastructure.backup.operations import create_backup, restore_archive
from infrastructure.backup.storage import LocalArchives
from infrastructure.eventstore.chain import GENESIS, chain_link
from infrastructure.eventstore.links import chain_link_v1

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
TOPICS = ("domain.market:CandleClosed", "domain.decision:DecisionMade")


def build(path: Path, ids: list[int], v1_upto: int = 0) -> None:
    """A store holding events at ``ids`` (gaps allowed) with their links, version 1 links up to ``v1_upto``."""
    app = open_store(f"sqlite:///{path}")
    events, chain = app.recorder.events_table_name, app.recorder.chain_table_name
    app.close()
    con = sqlite3.connect(path)
    previous = GENESIS
    for nid in ids:
        oid, version, topic = uuid.UUID(int=nid % 13 + 1).hex, nid, TOPICS[nid % 2]
        state = b'{"n":%d,"pad":"%s"}' % (nid, b"x" * (nid % 50))
        link = chain_link_v1 if nid <= v1_upto else chain_link
        previous = link(previous, nid, oid, version, topic, state)
        con.execute(f"INSERT INTO {events}(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
                    (nid, oid, version, topic, state))
        con.execute(f"INSERT INTO {chain}(notification_id, link) VALUES (?,?)", (nid, previous))
    con.commit()
    con.close()


def rows(path: Path) -> tuple[list, list]:
    con = sqlite3.connect(path)
    try:
        events = con.execute("SELECT rowid, originator_id, originator_version, topic, typeof(originator_id), "
                             "typeof(topic), typeof(state), state FROM stored_events ORDER BY rowid").fetchall()
        links = con.execute("SELECT notification_id, link, typeof(link) FROM stored_events_chain "
                            "ORDER BY notification_id").fetchall()
        return events, links
    finally:
        con.close()


@pytest.mark.parametrize("ids, v1_upto", [
    (list(range(1, 701)), 0),  # consecutive, version 2: the links as one blob
    ([*range(1, 301), *range(305, 500), 900], 0),  # gaps
    (list(range(1, 401)), 120),  # version 1 links, then version 2
])
def test_a_restore_stores_the_archived_rows_and_links_as_they_were(tmp_path, ids, v1_upto):
    source = tmp_path / "source.db"
    build(source, ids, v1_upto)
    archives = LocalArchives(tmp_path / "backups")
    app = open_store(f"sqlite:///{source}")
    try:
        name = create_backup(app, archives, kind="daily", now=NOW).name
    finally:
        app.close()
    target = tmp_path / "restored.db"
    restored = restore_archive(archives, name, f"sqlite:///{target}", open_store=open_store, now=NOW)
    assert (restored.events, restored.last_id) == (len(ids), ids[-1])
    assert rows(target) == rows(source)
    assert {len(link) for _, link, _ in rows(target)[1]} == ({32, 33} if v1_upto else {33})
