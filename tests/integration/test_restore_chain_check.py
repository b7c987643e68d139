"""A restored SQLite log is verified as stored (infrastructure/backup/chain_check.py), batch by batch by a worker
following the commits or in one walk: the same count, last id and head either way and as verify_chain, and the
first bad row named in any batch."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from api.bootstrap import open_store
from infrastructure.backup import chain_check, operations
from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.archive import read_events
from infrastructure.backup.chain_check import Follower, RangeCheck, StoredChain, check_stored
from infrastructure.backup.operations import create_backup, restore_archive
from infrastructure.backup.storage import LocalArchives
from infrastructure.eventstore.chain import GENESIS, chain_link, verify_chain

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
TOPIC = "domain.market:CandleClosed"


def build(path: Path, n: int, *, edit: int | None = None, unlinked: int | None = None,
          orphan_link: bool = False) -> tuple[str, str, bytes]:
    """A store of ``n`` events with their links, written directly; ``edit``: that row's state changed after its
    link was computed; ``unlinked``: that row's link left out; ``orphan_link``: a link without an event."""
    app = open_store(f"sqlite:///{path}")
    events, chain = app.recorder.events_table_name, app.recorder.chain_table_name
    app.close()
    con = sqlite3.connect(path)
    previous = GENESIS
    for nid in range(1, n + 1):
        oid, version, state = uuid.UUID(int=nid % 37 + 1).hex, nid, b'{"n":%d}' % nid
        previous = chain_link(previous, nid, oid, version, TOPIC, state)
        stored = b'{"n":-1}' if nid == edit else state
        con.execute(f"INSERT INTO {events}(rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
                    (nid, oid, version, TOPIC, stored))
        if nid != unlinked:
            con.execute(f"INSERT INTO {chain}(notification_id, link) VALUES (?,?)", (nid, previous))
    if orphan_link:
        con.execute(f"INSERT INTO {chain}(notification_id, link) VALUES (?,?)", (n + 1, previous))
    con.commit()
    con.close()
    return events, chain, previous


def followed(path: Path, events: str, chain: str, commits: list[int]) -> StoredChain | RangeCheck:
    """The log at ``path`` checked by a Follower told of ``commits`` (ids committed in turn), then the end."""
    follower = Follower(path, events, chain)
    try:
        for upto in commits:
            if not follower.committed(upto):
                break
        return follower.finish()
    finally:
        follower.stop()


BATCHES = [100, 101, 250, 251, 400]  # ids committed in turn; the rest at the end


def test_a_log_followed_batch_by_batch_gives_the_chain_of_one_walk_and_of_verify_chain(tmp_path):
    path = tmp_path / "events.db"
    events, chain, head = build(path, 500)
    assert followed(path, events, chain, BATCHES) == followed(path, events, chain, []) == check_stored(path, events, chain)
    assert check_stored(path, events, chain) == StoredChain(500, 500, head)
    app = open_store(f"sqlite:///{path}")
    try:
        report = verify_chain(app.recorder)
    finally:
        app.close()
    assert (report.ok, report.checked, report.head) == (True, 500, head.hex())


@pytest.mark.parametrize("edit", [3, 100, 101, 250, 251, 499])
def test_an_edited_row_is_named_in_any_batch(tmp_path, edit):
    path = tmp_path / "events.db"
    events, chain, _ = build(path, 500, edit=edit)
    for found in (followed(path, events, chain, BATCHES), check_stored(path, events, chain)):
        assert isinstance(found, RangeCheck)
        assert found.bad_notification_id == edit
        assert found.problem == f"notification {edit} does not match its chain link (edited or reordered)"


def test_an_event_without_a_link_and_a_link_without_an_event_are_found(tmp_path):
    path = tmp_path / "unlinked.db"
    events, chain, _ = build(path, 300, unlinked=280)
    for found in (followed(path, events, chain, BATCHES), check_stored(path, events, chain)):
        assert (found.bad_notification_id, found.problem) == (280, "notification 280 has no chain link (inserted outside the store)")
    path = tmp_path / "orphan.db"
    events, chain, _ = build(path, 300, orphan_link=True)
    for found in (followed(path, events, chain, BATCHES), check_stored(path, events, chain)):
        assert isinstance(found, RangeCheck) and found.problem == "1 chain link without an event (deleted events)"


def in_batches_of(size: int):
    """read_events cutting each record batch into batches of ``size`` rows (the loader commits each)."""
    def read(path, events_format):
        for batch in read_events(path, events_format):
            for start in range(0, batch.num_rows, size):
                yield batch.slice(start, size)
    return read


def test_a_restore_checked_batch_by_batch_refuses_an_archive_with_an_edited_row_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(chain_check, "FOLLOW_FROM", 10)
    monkeypatch.setattr(operations, "read_events", in_batches_of(50))
    build(tmp_path / "good.db", 400)
    build(tmp_path / "edited.db", 400, edit=321)
    archives = LocalArchives(tmp_path / "backups")
    names = {}
    for label in ("good", "edited"):
        app = open_store(f"sqlite:///{tmp_path / label}.db")
        try:
            names[label] = create_backup(app, archives, kind="daily", now=NOW).name
        finally:
            app.close()
    target = tmp_path / "restored" / "events.db"
    with pytest.raises(ArchiveProblem, match="notification 321: notification 321 does not match its chain link"):
        restore_archive(archives, names["edited"], f"sqlite:///{target}", open_store=open_store, now=NOW)
    assert not target.exists() and list(target.parent.iterdir()) == []
    restored = restore_archive(archives, names["good"], f"sqlite:///{target}", open_store=open_store, now=NOW)
    _, _, head = build(tmp_path / "again.db", 400)
    assert (restored.events, restored.last_id, restored.chain_head) == (400, 400, head.hex())


def test_a_follower_whose_restore_died_exits_without_a_word(tmp_path):
    path = tmp_path / "events.db"
    events, chain, _ = build(path, 300)
    follower = Follower(path, events, chain)
    assert follower.committed(100)
    follower._process.stdin.close()  # what a killed restore's end of the pipe does
    assert follower._process.wait(timeout=30) == 0
    assert follower._process.stdout.read() == b""
