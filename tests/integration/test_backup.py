"""Backups are snapshots of the log; restores are replays that give the same read model.

Real stores (SQLite always, PostgreSQL when reachable), real archives on disk,
the real projector for the read-model checksums.
"""

from __future__ import annotations

import sqlite3
import stat
import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from domain.config import CONFIG_LEDGER_ID
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.loading import RestoreRefused
from infrastructure.backup.operations import BackupRefused, create_backup, prune, restore_archive, verify_archive
from infrastructure.backup.storage import LocalArchives, list_archives
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import parse_store_url
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from tests.conftest import T0, fresh_pg_url, require_postgres

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def candles(product: str, start: datetime, count: int) -> list[Candle]:
    return [Candle(product, "1h", start + timedelta(hours=i), D("100"), D("120"), D("90"), D(100 + i % 7), D("2"))
            for i in range(count)]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """A realistic log: a backtest (orders, fills, halts), config changes, an incident."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source')}/events.db"
    settings = load_settings(env={})
    app = open_store(url)
    frame = read_candle_file(bundled_candles_path()).frame.iloc[:1500]
    run_backtest(
        app, frame, exchange=paper_exchange(settings, id_prefix="paper"), strategy=decision_model(settings),
        settings=loop_settings(settings, flush_every=250), initial_balance=D(10000), config_hash="test",
        code_version="test", run_id=uuid.UUID(int=7),
    )
    meta = EventMeta(T0, actor="operator:test")
    app.set_config_baseline({"risk.max_daily_loss_pct": "5"}, "h0", meta, reason="test")
    app.change_config("risk.max_daily_loss_pct", "4", "tighter", "h1", meta)
    app.open_incident(uuid.UUID(int=99), meta, severity="P2", kind="test", details="drill")
    app.close()
    return url


def readmodel_checksums(url: str) -> dict[str, str]:
    app = open_store(url)
    con = runner.open_readmodel(":memory:")
    try:
        runner.rebuild(app, con, runner.ALL_PROJECTIONS, 5000)
        return runner.checksums(con)
    finally:
        con.close()
        app.close()


@pytest.fixture(scope="module")
def source_checksums(source) -> dict[str, str]:
    return readmodel_checksums(source)


def raw_rows(url: str) -> list[tuple]:
    app = open_store(url)
    try:
        out, after = [], 0
        while rows := app.recorder.select_log_rows(after, 10_000):
            out += [(nid, topic, bytes(state)) for nid, topic, state in rows]
            after = rows[-1][0]
        return out
    finally:
        app.close()


def add_candles(url: str, product: str, count: int) -> None:
    """Record ``count`` hourly candles of ``product`` from T0 in the store at ``url``."""
    app = open_store(url)
    try:
        app.record_candles(candles(product, T0, count), EventMeta(T0, actor="market"))
    finally:
        app.close()


def backup(url: str, dest: Path, **kwargs):
    app = open_store(url)
    try:
        return create_backup(app, LocalArchives(dest), kind=kwargs.pop("kind", "daily"), now=kwargs.pop("now", NOW), **kwargs)
    finally:
        app.close()


def test_a_full_restore_keeps_ids_and_chain_and_gives_the_same_read_model(tmp_path, source, source_checksums):
    created = backup(source, tmp_path / "backups", source="test", settings={"k": "v"})
    m = created.manifest
    app = open_store(source)
    head_id, head = app.recorder.chain_head()
    total = app.max_notification_id()
    app.close()
    assert (m.first_id, m.last_id, m.event_count, m.chain_head) == (1, total, total, head.hex())
    assert m.kind == "daily" and m.parent is None and m.files[0].sha256 and m.settings == {"k": "v"}

    files = sorted((tmp_path / "backups").rglob("*"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.is_file()}
    target = f"sqlite:///{tmp_path}/restored/events.db"
    restored = restore_archive(LocalArchives(tmp_path / "backups"), created.name, target, open_store=open_store, now=NOW)
    assert sorted((tmp_path / "backups").rglob("*")) == files  # the archive is only read
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.is_file()} == before
    assert (restored.events, restored.last_id, restored.chain_head) == (total, total, head.hex())
    assert raw_rows(target) == raw_rows(source)
    app = open_store(target)
    try:
        assert verify_chain(app.recorder).ok
        assert app.recorder.chain_head() == (head_id, head)
        original = open_store(source)
        order_id = next(e.event.originator_id for e in original.iter_log() if e.event.event_type == "OrderFilled")
        # aggregates load from the restored streams, at the same versions
        ledger = app.repository.get(CONFIG_LEDGER_ID)
        assert ledger.version == original.repository.get(CONFIG_LEDGER_ID).version >= 2
        assert app.repository.get(order_id).version == original.repository.get(order_id).version >= 3
        original.close()
    finally:
        app.close()
    assert readmodel_checksums(target) == source_checksums


def test_archive_files_are_private_and_nothing_temporary_is_left(tmp_path, source):
    created = backup(source, tmp_path / "backups", events_format="jsonl")
    folder = tmp_path / "backups" / created.name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["events.jsonl.gz", "manifest.json"]
    for file in folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [created.name]
    assert verify_archive(LocalArchives(tmp_path / "backups"), created.name).event_count == created.manifest.event_count


def test_an_incremental_holds_only_new_events_and_restores_through_its_parent(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, "BTC-USD", 40)
    dest = tmp_path / "backups"
    full = backup(url, dest)
    add_candles(url, "ETH-USD", 15)
    incr = backup(url, dest, since_last=True, now=NOW + timedelta(hours=1))
    assert incr.manifest.parent == full.name
    assert (incr.manifest.first_id, incr.manifest.last_id, incr.manifest.event_count) == (41, 55, 15)
    assert incr.manifest.chain_start == full.manifest.chain_head
    empty = backup(url, dest, since_last=True, now=NOW + timedelta(hours=2))  # nothing new: an empty child
    assert empty.manifest.parent == incr.name and empty.manifest.event_count == 0

    verified = verify_archive(LocalArchives(dest), empty.name)
    assert verified.chain == [full.name, incr.name, empty.name] and verified.event_count == 55
    target = f"sqlite:///{tmp_path}/restored.db"
    restored = restore_archive(LocalArchives(dest), empty.name, target, open_store=open_store, now=NOW)
    assert restored.events == 55 and raw_rows(target) == raw_rows(url)


def test_an_incremental_is_refused_when_the_log_no_longer_matches_its_parent(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, "BTC-USD", 10)
    dest = tmp_path / "backups"
    backup(url, dest)
    with sqlite3.connect(parse_store_url(url).sqlite_path) as con:  # someone rewrites the chain behind the app
        con.execute("UPDATE stored_events_chain SET link = zeroblob(32) WHERE notification_id = 10")
    with pytest.raises(BackupRefused, match="no longer matches the previous backup"):
        backup(url, dest, since_last=True)
    assert len(list_archives(LocalArchives(dest))) == 1


def test_a_backup_that_fails_midway_publishes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, "BTC-USD", 30)
    with sqlite3.connect(parse_store_url(url).sqlite_path) as con:  # a link deleted behind the app's back
        con.execute("DELETE FROM stored_events_chain WHERE notification_id = 20")
    dest = tmp_path / "backups"
    with pytest.raises(BackupRefused, match="notification 20 has no chain link"):
        backup(url, dest)
    assert list(dest.iterdir()) == []  # not even the staging folder


def test_a_leftover_of_a_crashed_backup_never_looks_complete(tmp_path, source):
    dest = tmp_path / "backups"
    created = backup(source, dest)
    crashed = dest / ".tradecore-20261124T040000Z-daily.partial-123-abcd"  # what a SIGKILL mid-write leaves
    crashed.mkdir()
    (crashed / "events.parquet").write_bytes((dest / created.name / "events.parquet").read_bytes()[:1000])
    no_manifest = dest / "tradecore-20261124T050000Z-daily"
    no_manifest.mkdir()
    (no_manifest / "events.parquet").write_bytes(b"PAR1")
    listed = {a.name: a for a in list_archives(LocalArchives(dest))}
    assert set(listed) == {created.name, no_manifest.name}
    assert listed[no_manifest.name].manifest is None
    with pytest.raises(ArchiveProblem, match="no manifest: the backup did not finish"):
        verify_archive(LocalArchives(dest), no_manifest.name)


def test_a_backup_taken_while_the_bot_writes_is_a_consistent_snapshot(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, "BTC-USD", 3000)
    stop = threading.Event()
    written = []

    def bot() -> None:
        writer = open_store(url)
        i = 0
        while not stop.is_set():
            writer.record_candles(candles(f"W{i}-USD", T0, 50), EventMeta(T0, actor="market"))
            written.append(writer.max_notification_id())
            i += 1
        writer.close()

    thread = threading.Thread(target=bot)
    thread.start()
    try:
        app = open_store(url)
        snapshot = LocalArchives(tmp_path / "backups")
        created = create_backup(app, snapshot, kind="daily", now=NOW)
        app.close()
    finally:
        stop.set()
        thread.join()
    assert written, "the writer never got a turn"
    assert verify_archive(snapshot, created.name).last_id == created.manifest.last_id >= 3000
    target = f"sqlite:///{tmp_path}/restored.db"
    restore_archive(snapshot, created.name, target, open_store=open_store, now=NOW)
    assert raw_rows(target) == raw_rows(url)[: created.manifest.event_count]


def test_restore_refuses_a_non_empty_target_and_force_moves_it_aside(tmp_path, store_url, source):
    dest = tmp_path / "backups"
    created = backup(source, dest)
    app = open_store(store_url)
    app.record_candles(candles("OLD-USD", T0, 5), EventMeta(T0, actor="market"))
    app.close()
    with pytest.raises(RestoreRefused, match="already holds"):
        restore_archive(LocalArchives(dest), created.name, store_url, open_store=open_store, now=NOW)
    assert len(raw_rows(store_url)) == 5  # untouched

    restored = restore_archive(LocalArchives(dest), created.name, store_url, open_store=open_store, now=NOW, force=True)
    assert restored.moved_aside
    assert raw_rows(store_url) == raw_rows(source)
    location = parse_store_url(store_url)
    if location.backend == "sqlite":
        with sqlite3.connect(restored.moved_aside) as con:
            assert con.execute("SELECT count(*) FROM stored_events").fetchone()[0] == 5
    else:
        import psycopg

        moved = restored.moved_aside.removeprefix("schema ")
        with psycopg.connect(host=location.host, port=location.port, user=location.user, dbname=location.dbname) as con:
            assert con.execute(f'SELECT count(*) FROM "{moved}".tradecore_events').fetchone()[0] == 5
            con.execute(f'DROP SCHEMA "{moved}" CASCADE')


def test_restore_until_an_id_or_a_time_restores_a_prefix_of_the_log(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    app = open_store(url)
    app.record_candles(candles("BTC-USD", T0, 20), EventMeta(T0, actor="market"))  # dated at each candle's close
    app.close()
    dest = tmp_path / "backups"
    created = backup(url, dest)
    by_id = restore_archive(LocalArchives(dest), created.name, f"sqlite:///{tmp_path}/a.db", open_store=open_store,
                            now=NOW, until_id=7)
    assert by_id.events == 7 and raw_rows(f"sqlite:///{tmp_path}/a.db") == raw_rows(url)[:7]
    by_time = restore_archive(LocalArchives(dest), created.name, f"sqlite:///{tmp_path}/b.db", open_store=open_store,
                              now=NOW, until_time=T0 + timedelta(hours=5))
    assert by_time.events == 5 and by_time.until_id == 5
    app = open_store(f"sqlite:///{tmp_path}/b.db")
    assert verify_chain(app.recorder).ok
    app.close()


@pytest.mark.postgres
def test_sqlite_to_postgresql_and_back_is_the_migration_path(tmp_path, source, source_checksums):
    require_postgres()
    dest = tmp_path / "backups"
    created = backup(source, dest)
    pg = fresh_pg_url()
    restore_archive(LocalArchives(dest), created.name, pg, open_store=open_store, now=NOW)
    assert raw_rows(pg) == raw_rows(source)
    assert readmodel_checksums(pg) == source_checksums
    app = open_store(pg)
    try:
        assert verify_chain(app.recorder).ok
        assert app.repository.get(CONFIG_LEDGER_ID) is not None
        app.record_candles(candles("NEW-USD", T0, 3), EventMeta(T0, actor="market"))  # the sequence continues
        assert app.max_notification_id() == len(raw_rows(source)) + 3
        assert verify_chain(app.recorder).ok
    finally:
        app.close()
    back = backup(pg, dest, now=NOW + timedelta(days=1))
    assert back.manifest.event_count == len(raw_rows(source)) + 3
    sqlite_again = f"sqlite:///{tmp_path}/back.db"
    restore_archive(LocalArchives(dest), back.name, sqlite_again, open_store=open_store, now=NOW)
    assert raw_rows(sqlite_again) == raw_rows(pg)


def test_prune_keeps_the_newest_of_each_kind_their_parents_and_every_only_copy(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    dest = tmp_path / "backups"
    app = open_store(url)
    made = []
    for day in range(4):
        app.record_candles(candles(f"D{day}-USD", T0, 5), EventMeta(T0, actor="market"))
        made.append(create_backup(app, LocalArchives(dest), kind="daily", now=NOW + timedelta(days=day)).name)
    app.record_candles(candles("X-USD", T0, 5), EventMeta(T0, actor="market"))
    incr = create_backup(app, LocalArchives(dest), kind="weekly", since_last=True, now=NOW + timedelta(days=5)).name
    app.close()
    plan = prune(LocalArchives(dest), {"daily": 1, "weekly": 1, "monthly": 1}, dry_run=True)
    assert plan.delete == made[:3] and set(plan.keep) == {made[3], incr}
    assert len(list_archives(LocalArchives(dest))) == 5  # a dry run deletes nothing
    prune(LocalArchives(dest), {"daily": 0, "weekly": 1, "monthly": 0})
    names = [a.name for a in list_archives(LocalArchives(dest))]
    assert names == [made[3], incr]  # the weekly incremental needs the last daily
    assert verify_archive(LocalArchives(dest), incr).event_count == 25
