"""The archive format's pieces: the inlined chain link, the sealed manifest, both events formats, retention."""

from __future__ import annotations

import uuid

import pytest

from infrastructure.backup.archive import ArchiveProblem, EventsWriter, FileEntry, Manifest, read_events
from infrastructure.backup.walk import ChainWalk
from infrastructure.backup.retention import plan_prune
from infrastructure.backup.rows import rows_to_batch
from infrastructure.eventstore.chain import GENESIS, chain_link


def rows(n: int, start: int = 1, previous: bytes = GENESIS) -> tuple[list[list], bytes]:
    cols: list[list] = [[], [], [], [], [], []]
    for nid in range(start, start + n):
        oid = uuid.UUID(int=nid)
        state = b'{"n":%d,"text":"caf\xc3\xa9"}' % nid if nid != 3 else b"\xff\xfe not utf-8"
        previous = chain_link(previous, nid, oid, 1, "domain.market:CandleClosed", state)
        for col, value in zip(cols, (nid, oid.hex, 1, "domain.market:CandleClosed", state, previous)):
            col.append(value)
    return cols, previous


def test_the_walk_recomputes_exactly_the_links_the_store_writes():
    cols, head = rows(50)
    walk = ChainWalk()
    walk.feed(rows_to_batch(*cols))
    assert (walk.head, walk.count, walk.first_id, walk.last_id) == (head, 50, 1, 50)


def test_the_walk_names_an_edited_row_and_a_repeated_one():
    cols, _ = rows(10)
    cols[4][6] = b"edited"
    with pytest.raises(ArchiveProblem, match="notification 7 does not match its chain link"):
        ChainWalk().feed(rows_to_batch(*cols))
    cols, _ = rows(10)
    for col in cols:
        col.insert(5, col[4])
    with pytest.raises(ArchiveProblem, match="notification 5 comes after 5"):
        ChainWalk().feed(rows_to_batch(*cols))


@pytest.mark.parametrize("events_format, compress", [("parquet", True), ("jsonl", True), ("jsonl", False)])
def test_both_formats_give_back_the_stored_bytes_verbatim(tmp_path, events_format, compress):
    cols, head = rows(250)
    writer = EventsWriter(tmp_path / "events", events_format, compress=compress)
    for i in range(0, 250, 100):
        writer.write(rows_to_batch(*(c[i:i + 100] for c in cols)))
    entry = writer.close()
    assert (entry.rows, writer.first_id, writer.last_id, writer.last_link) == (250, 1, 250, head)
    back: list[list] = [[], [], [], [], [], []]
    for batch in read_events(tmp_path / "events", events_format, batch_size=64):
        for col, i in zip(back, range(6)):
            col += batch.column(i).to_pylist()
    assert back == cols


def manifest(**fields) -> Manifest:
    base = dict(purpose="backup", name="a", created_at="2026-01-01T00:00:00+00:00", events_format="parquet",
                event_count=1, first_id=1, last_id=1, chain_start=GENESIS.hex(), chain_head="ab",
                files=[FileEntry("events.parquet", "00", 1, 1)], kind="daily")
    return Manifest(**{**base, **fields})


def test_a_manifest_is_sealed_by_its_own_checksum():
    raw = manifest().to_bytes()
    assert Manifest.from_bytes(raw, "a").event_count == 1
    with pytest.raises(ArchiveProblem, match="own checksum"):
        Manifest.from_bytes(raw.replace(b'"event_count": 1', b'"event_count": 2'), "a")
    with pytest.raises(ArchiveProblem, match="format version 9"):
        Manifest.from_bytes(raw.replace(b'"format_version": 1', b'"format_version": 9'), "a")
    with pytest.raises(ArchiveProblem, match="not valid JSON"):
        Manifest.from_bytes(raw[:40], "a")


def test_retention_keeps_the_newest_of_each_kind():
    archives = {f"d{i}": manifest(name=f"d{i}", created_at=f"2026-01-{i + 1:02d}", first_id=1, last_id=10 * (i + 1),
                                  event_count=10 * (i + 1)) for i in range(5)}
    archives["w0"] = manifest(name="w0", kind="weekly", created_at="2025-12-01", first_id=1, last_id=5, event_count=5)
    plan = plan_prune(archives, {"daily": 2, "weekly": 1, "monthly": 1})
    assert sorted(plan.keep) == ["d3", "d4", "w0"] and plan.delete == ["d0", "d1", "d2"]


def test_retention_keeps_parents_of_kept_incrementals_and_the_only_copy_of_events():
    archives = {
        "full": manifest(name="full", created_at="2026-01-01", first_id=1, last_id=100, event_count=100),
        "inc1": manifest(name="inc1", created_at="2026-01-02", first_id=101, last_id=150, event_count=50, parent="full",
                         parent_last_id=100),
        "inc2": manifest(name="inc2", created_at="2026-01-03", first_id=151, last_id=160, event_count=10, parent="inc1",
                         parent_last_id=150),
        "old": manifest(name="old", kind="monthly", created_at="2025-06-01", first_id=1, last_id=40, event_count=40),
        "gap": manifest(name="gap", kind="monthly", created_at="2025-07-01", first_id=1, last_id=170, event_count=170),
        "incomplete": None,
    }
    plan = plan_prune(archives, {"daily": 1, "weekly": 0, "monthly": 0})
    assert plan.keep["inc1"].startswith("parent of kept") and plan.keep["full"].startswith("parent of kept")
    assert plan.keep["gap"].startswith("only copy")  # ids 161..170 are nowhere else
    assert plan.delete == ["old"] and plan.incomplete == ["incomplete"]
