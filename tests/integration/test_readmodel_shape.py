"""A read model written by another version of a projection (a column missing) is rebuilt, not written wrongly."""

from __future__ import annotations

from projections.engine import runner
from projections.engine.tracking import ensure, shape_changed, shapes_changed
from projections.ledger.pnl import PnlProjection


def test_a_table_without_a_column_this_version_writes_is_rebuilt_from_zero(tmp_path):
    con = runner.open_readmodel(tmp_path / "rm.duckdb")
    projection = PnlProjection()
    assert ensure(con, [projection]) == {"pnl": 0}
    assert not shape_changed(con, projection)
    con.execute("UPDATE projection_tracking SET last_notification_id = 42 WHERE name = 'pnl'")
    assert ensure(con, [projection]) == {"pnl": 42}  # same shape: the position stands
    con.execute("ALTER TABLE pnl_daily DROP COLUMN day_pnl")  # as a read model of the version before day_pnl
    con.execute("INSERT INTO pnl__state VALUES ('x', '{}')")
    assert shape_changed(con, projection)
    assert ensure(con, [projection]) == {"pnl": 0}  # rebuilt from the log
    assert "day_pnl" in {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'pnl_daily'").fetchall()}
    assert con.execute("SELECT count(*) FROM pnl__state").fetchone()[0] == 0
    con.close()


def test_the_shapes_of_several_projections_are_checked_together_each_by_its_own_tables(tmp_path):
    """ensure checks every projection in one in-memory database (a schema each): a changed table names its own
    projection only, whichever projections come before or after it."""
    con = runner.open_readmodel(tmp_path / "rm.duckdb")
    chosen = runner.ALL_PROJECTIONS
    ensure(con, chosen)
    assert shapes_changed(con, chosen) == set()
    con.execute("ALTER TABLE equity_curve DROP COLUMN drawdown_pct")  # pnl's
    con.execute("ALTER TABLE decisions DROP COLUMN cached")  # decisions'
    assert shapes_changed(con, chosen) == {"pnl", "decisions"}
    assert shapes_changed(con, list(reversed(chosen))) == {"pnl", "decisions"}
    assert {p.name for p in chosen if shape_changed(con, p)} == {"pnl", "decisions"}
    con.execute("UPDATE projection_tracking SET last_notification_id = 7")
    assert {name: at for name, at in ensure(con, chosen).items() if at == 0} == {"pnl": 0, "decisions": 0}
    assert shapes_changed(con, chosen) == set()
    con.close()
