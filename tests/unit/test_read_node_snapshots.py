"""A read node publishes its snapshot beside the projector, not in its way (api/http/server.py: Snapshots)."""

from __future__ import annotations

import threading

import duckdb

from api.http.server import Snapshots
from projections.reading.access import snapshot_path


def test_a_snapshot_is_made_while_the_owner_goes_on_committing(tmp_path):
    path = tmp_path / "readmodel.duckdb"
    con = duckdb.connect(str(path))
    for i in range(20):
        con.execute(f"CREATE TABLE t{i} AS SELECT range AS x FROM range(20000)")
    snapshots = Snapshots(con, str(path), every=60.0)
    snapshots.publish()  # due (never made): started in a thread of its own, publish() does not wait for it
    assert snapshots._thread is not None
    commits, stop = [], threading.Event()

    def owner():
        while not stop.is_set():
            con.begin()
            con.execute("INSERT INTO t0 VALUES (-1)")
            con.commit()
            commits.append(1)

    writer = threading.Thread(target=owner)
    writer.start()
    snapshots._thread.join(30)
    stop.set()
    writer.join()
    assert commits, "the owner committed nothing while the snapshot was made"
    snapshots.publish()  # not due again within `every`: nothing started
    assert not snapshots._thread.is_alive()
    snapshots.close()
    copy = duckdb.connect(str(snapshot_path(path)), read_only=True)
    assert len(copy.execute("SHOW TABLES").fetchall()) == 20
    assert copy.execute("SELECT count(*) FROM t1").fetchall() == [(20000,)]


def test_the_last_snapshot_at_stop_is_made_before_publish_returns(tmp_path):
    path = tmp_path / "readmodel.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE positions AS SELECT 1 AS x")
    snapshots = Snapshots(con, str(path), every=60.0)
    snapshots.publish(force=True)
    assert duckdb.connect(str(snapshot_path(path)), read_only=True).execute("SELECT x FROM positions").fetchall() == [(1,)]
    snapshots.close()


def test_no_snapshot_of_an_in_memory_read_model_or_when_turned_off(tmp_path):
    con = duckdb.connect(":memory:")
    for snapshots in (Snapshots(con, ":memory:", 5.0), Snapshots(con, str(tmp_path / "rm.duckdb"), 0.0)):
        snapshots.publish(force=True)
        snapshots.close()
    assert list(tmp_path.iterdir()) == []
