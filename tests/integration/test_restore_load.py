"""A SQLite restore stores every archived row and link as it was: batches of consecutive ids with version 2 links
(their links written as one blob cut in SQLite), ids with gaps, version 1 links of older logs (one bound row each);
the restored file has the schema of a new store, its (stream, version) key built after the rows and enforced."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api.bootstrap import open_store
from infrastructure.backup import chain_check, operations
from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.operations import create_backup, restore_archive
from infrastructure.backup.sqlite_restore import StreamKey
from infrastructure.backup.storage import LocalArchives
from infrastructure.eventstore.chain import GENESIS, chain_link
from infrastructure.eventstore.links import chain_link_v1
from tests.integration.test_restore_chain_check import in_batches_of

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


def restore_in_batches(monkeypatch, batch_rows: int | None) -> None:
    """Restores read the archive in batches of ``batch_rows`` rows, followed by the checking worker from 10 rows
    (None: as they come, one transaction checked at the end)."""
    if batch_rows:
        monkeypatch.setattr(chain_check, "FOLLOW_FROM", 10)
        monkeypatch.setattr(operations, "read_events", in_batches_of(batch_rows))


def backed_up(source: Path, tmp_path: Path) -> tuple[LocalArchives, str]:
    """A daily backup of the store file ``source`` in ``tmp_path/backups``: the archives and the backup's name."""
    archives = LocalArchives(tmp_path / "backups")
    app = open_store(f"sqlite:///{source}")
    try:
        return archives, create_backup(app, archives, kind="daily", now=NOW).name
    finally:
        app.close()


@pytest.mark.parametrize("batch_rows", [None, 64])  # one transaction; batches committed, followed and copied in
@pytest.mark.parametrize("ids, v1_upto", [
    (list(range(1, 701)), 0),  # consecutive, version 2: the links as one blob
    ([*range(1, 301), *range(305, 500), 900], 0),  # gaps
    (list(range(1, 401)), 120),  # version 1 links, then version 2
])
def test_a_restore_stores_the_archived_rows_and_links_as_they_were(tmp_path, monkeypatch, ids, v1_upto, batch_rows):
    restore_in_batches(monkeypatch, batch_rows)
    source = tmp_path / "source.db"
    build(source, ids, v1_upto)
    archives, name = backed_up(source, tmp_path)
    target = tmp_path / "restored.db"
    restored = restore_archive(archives, name, f"sqlite:///{target}", open_store=open_store, now=NOW)
    assert (restored.events, restored.last_id) == (len(ids), ids[-1])
    assert rows(target) == rows(source)
    assert {len(link) for _, link, _ in rows(target)[1]} == ({32, 33} if v1_upto else {33})


def schema(path: Path) -> tuple[list, list, list]:
    con = sqlite3.connect(path)
    try:
        return (sorted(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()),
                con.execute("PRAGMA index_list(stored_events)").fetchall(),
                con.execute("PRAGMA integrity_check").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize("batch_rows", [None, 50])  # one transaction checked at the end; batches followed by a worker
def test_a_restored_store_has_the_schema_of_a_new_store_and_its_stream_key_holds(tmp_path, monkeypatch, batch_rows):
    restore_in_batches(monkeypatch, batch_rows)
    source = tmp_path / "source.db"
    build(source, list(range(1, 401)))
    fresh = tmp_path / "fresh.db"
    open_store(f"sqlite:///{fresh}").close()
    archives, name = backed_up(source, tmp_path)
    target = tmp_path / "restored.db"
    restore_archive(archives, name, f"sqlite:///{target}", open_store=open_store, now=NOW)
    assert schema(target) == schema(fresh)
    assert schema(target)[1] == [(0, "sqlite_autoindex_stored_events_1", 1, "pk", 0)]
    assert schema(target)[2] == [("ok",)]
    con = sqlite3.connect(target)
    try:
        oid, version = con.execute("SELECT originator_id, originator_version FROM stored_events WHERE rowid = 7").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            con.execute("INSERT INTO stored_events(originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
                        (oid, version, TOPICS[0], b"{}"))
        plan = con.execute("EXPLAIN QUERY PLAN SELECT * FROM stored_events WHERE originator_id = ? AND originator_version > ?",
                           (oid, 0)).fetchall()
        assert "sqlite_autoindex_stored_events_1" in str(plan)
    finally:
        con.close()


def build_with_a_repeated_version(path: Path, n: int, repeat: tuple[int, int]) -> None:
    """Events 1..n with their links in tables without the stream key; event ``repeat[1]`` has the stream and
    version of event ``repeat[0]`` (an archive no store could have made, its links in order)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB)")
    con.execute("CREATE TABLE stored_events_chain (notification_id INTEGER PRIMARY KEY, link BLOB NOT NULL)")
    previous = GENESIS
    for nid in range(1, n + 1):
        like = repeat[0] if nid == repeat[1] else nid
        oid, version, state = uuid.UUID(int=like % 13 + 1).hex, like, b'{"n":%d}' % nid
        previous = chain_link(previous, nid, oid, version, TOPICS[0], state)
        con.execute("INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
                    (nid, oid, version, TOPICS[0], state))
        con.execute("INSERT INTO stored_events_chain(notification_id, link) VALUES (?,?)", (nid, previous))
    con.commit()
    con.close()


def test_an_archive_with_a_stream_version_twice_is_refused_naming_both_and_leaves_nothing(tmp_path):
    source = tmp_path / "source.db"
    build_with_a_repeated_version(source, 300, (40, 260))
    archives, name = backed_up(source, tmp_path)
    target = tmp_path / "restored" / "events.db"
    oid = uuid.UUID(int=40 % 13 + 1).hex
    with pytest.raises(ArchiveProblem, match=f"notifications 40 and 260 are both version 40 of {oid}"):
        restore_archive(archives, name, f"sqlite:///{target}", open_store=open_store, now=NOW)
    assert list(target.parent.iterdir()) == []


def test_the_stream_key_of_a_new_store_is_left_out_while_loading_and_built_back(tmp_path):
    path = tmp_path / "new.db"
    open_store(f"sqlite:///{path}").close()
    before = schema(path)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        key = StreamKey(con, "stored_events")
        assert key.table_sql is not None and con.execute("PRAGMA index_list(stored_events)").fetchall() == []
        con.execute("INSERT INTO stored_events(rowid, originator_id, originator_version, topic, state) VALUES (5, 'a', 1, 't', x'00')")
        key.build(con)
    finally:
        con.close()
    assert schema(path) == before
