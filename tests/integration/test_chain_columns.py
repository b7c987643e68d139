"""The chain covers the exact stored value of every column: each edit of a stored row is caught.

The row is edited behind the application's back, one column at a time, the
way an intruder with database access would; `tradecore audit verify` must name
it. Also: logs with version 1 links (written before the chain covered stored
types) still verify, and a version 1 link cannot replace a version 2 one.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid

import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from infrastructure.eventstore.chain import GENESIS, chain_link, verify_chain
from tests.conftest import T0, fresh_pg_url, require_postgres
from tests.integration.test_tamper_evidence import Tamper, caught, seed, verify_cli

SQLITE_EDITS = {
    "stream id re-spelled with dashes": "UPDATE stored_events SET originator_id = "
    "substr(originator_id,1,8)||'-'||substr(originator_id,9,4)||'-'||substr(originator_id,13,4)||'-'"
    "||substr(originator_id,17,4)||'-'||substr(originator_id,21) WHERE rowid = 3",
    "stream id in upper case": "UPDATE stored_events SET originator_id = upper(originator_id) WHERE rowid = 3",
    "stream id stored as a blob": "UPDATE stored_events SET originator_id = CAST(originator_id AS BLOB) WHERE rowid = 3",
    "version changed": "UPDATE stored_events SET originator_version = originator_version + 1000 WHERE rowid = 3",
    "version stored as a blob": "UPDATE stored_events SET originator_version = CAST(originator_version AS BLOB) WHERE rowid = 3",
    "topic changed": "UPDATE stored_events SET topic = topic || 'X' WHERE rowid = 3",
    "topic stored as a blob": "UPDATE stored_events SET topic = CAST(topic AS BLOB) WHERE rowid = 3",
    "state changed": "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"close\":\"102\"', '\"close\":\"999\"') AS BLOB) WHERE rowid = 3",
    "state stored as text": "UPDATE stored_events SET state = CAST(state AS TEXT) WHERE rowid = 3",
}

PG_EDITS = {
    "stream id changed": "UPDATE {t} SET originator_id = gen_random_uuid() WHERE notification_id = 3",
    "version changed": "UPDATE {t} SET originator_version = originator_version + 1000 WHERE notification_id = 3",
    "topic changed": "UPDATE {t} SET topic = topic || 'X' WHERE notification_id = 3",
    "state changed": "UPDATE {t} SET state = replace(convert_from(state, 'UTF8'), '\"close\":\"102\"', '\"close\":\"999\"')::bytea "
    "WHERE notification_id = 3",
    "state with one more byte": "UPDATE {t} SET state = state || '\\x20'::bytea WHERE notification_id = 3",
}


@pytest.mark.parametrize("column", list(SQLITE_EDITS))
def test_each_column_edit_is_caught_on_sqlite(tmp_path, column):
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url)
    with sqlite3.connect(tmp_path / "events.db") as conn:
        before = conn.execute("SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid = 3").fetchone()
        assert conn.execute(SQLITE_EDITS[column]).rowcount == 1
        after = conn.execute("SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid = 3").fetchone()
        changed = [type(a) is not type(b) or a != b for a, b in zip(before, after)]
        assert sum(changed) == 1, (before, after)  # exactly one column differs, by value or by stored type
    result = verify_cli(url)
    assert result.returncode == 1, result.stdout
    assert "first bad notification id 3" in result.stdout and "edited" in result.stdout


@pytest.mark.postgres
@pytest.mark.parametrize("column", list(PG_EDITS))
def test_each_column_edit_is_caught_on_postgres(column):
    require_postgres()
    url = fresh_pg_url()
    seed(url)
    caught(url, (PG_EDITS[column], ()), first=3, word="edited")


def test_moving_an_event_to_another_id_is_caught(store_url):
    seed(store_url)
    caught(store_url, ("UPDATE {t} SET {id} = 100 WHERE {id} = %s", (3,)), first=3)


def _v1(previous: bytes, nid: int, oid: str, version: int, topic: str, state: bytes) -> bytes:
    """The version 1 formula, written out here as the old writer computed it."""
    h = hashlib.sha256(previous)
    h.update(b"%d|%s|%d|%s|" % (nid, oid.encode(), version, topic.encode()))
    h.update(state)
    return h.digest()


def _rewrite_as_version_1(path) -> None:
    """Turn the store's links into what a version 1 writer stored (an old log)."""
    with sqlite3.connect(path) as conn:
        previous = GENESIS
        for nid, oid, version, topic, state in conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
        ).fetchall():
            previous = _v1(previous, nid, oid, version, topic, state)
            conn.execute("UPDATE stored_events_chain SET link = ? WHERE notification_id = ?", (previous, nid))


def test_an_old_log_with_version_1_links_still_verifies_and_new_links_are_version_2(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url)
    _rewrite_as_version_1(tmp_path / "events.db")
    app = open_store(url)
    try:
        report = verify_chain(app.recorder)
        assert report.ok and report.checked == 8 and len(bytes.fromhex(report.head)) == 32
        app.resume_trading("after the upgrade", EventMeta(T0, actor="test"))
        report = verify_chain(app.recorder)
        assert report.ok and report.checked == 9 and bytes.fromhex(report.head)[:1] == b"\x02"
    finally:
        app.close()


def test_a_version_1_row_re_spelled_with_dashes_is_caught(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url)
    _rewrite_as_version_1(tmp_path / "events.db")
    with sqlite3.connect(tmp_path / "events.db") as conn:
        oid = conn.execute("SELECT originator_id FROM stored_events WHERE rowid = 3").fetchone()[0]
        conn.execute("UPDATE stored_events SET originator_id = ? WHERE rowid = 3", (str(uuid.UUID(oid)),))
    result = verify_cli(url)
    assert result.returncode == 1 and "first bad notification id 3" in result.stdout


def test_a_version_1_link_cannot_replace_a_version_2_one(tmp_path):
    """Downgrade: after version 2 links, a row rewritten with the weaker version 1 formula fails."""
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url)
    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows = conn.execute("SELECT rowid, originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid").fetchall()
        links = dict(conn.execute("SELECT notification_id, link FROM stored_events_chain").fetchall())
        nid, oid, version, topic, state = rows[-1]
        assert links[nid] == chain_link(links[nid - 1], nid, oid, version, topic, state)
        conn.execute("UPDATE stored_events_chain SET link = ? WHERE notification_id = ?", (_v1(links[nid - 1], nid, oid, version, topic, state), nid))
    result = verify_cli(url)
    assert result.returncode == 1 and f"first bad notification id {nid}" in result.stdout


@pytest.mark.parametrize("deleted, expected", [((4,), "notification 4 is missing"), ((4, 5, 6), "notifications 4..6 are missing")])
def test_events_deleted_with_their_links_are_named_as_a_gap(store_url, deleted, expected):
    seed(store_url)
    tamper = Tamper(store_url)
    chain = "stored_events_chain" if tamper.location.backend == "sqlite" else f'"{tamper.location.schema}".tradecore_events_chain'
    for nid in deleted:
        tamper.run(("DELETE FROM {t} WHERE {id} = %s", (nid,)), (f"DELETE FROM {chain} WHERE notification_id = %s", (nid,)))
    result = verify_cli(store_url)
    assert result.returncode == 1
    assert f"first bad notification id {deleted[0]}" in result.stdout and expected in result.stdout
    assert "edited or reordered" not in result.stdout
