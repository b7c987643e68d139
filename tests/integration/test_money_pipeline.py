"""The projector writes the money ledgers' page while it walks the next from the state the walk before left
(projections/engine/group_writes.py ``walk_group``, ``GroupWriter``; projections/ledger/carry.py ``Carry``): the
tables must be those of each money projection applied alone, page by page (no carry, nothing in flight),
wherever the pages end; a write that fails is raised with the positions left where they are committed."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import duckdb
import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from projections.ledger.pnl import PnlProjection
from projections.ledger.positions import PositionsProjection
from projections.ledger.risk_usage import RiskUsageProjection


def money():
    return [PositionsProjection(), PnlProjection(), RiskUsageProjection()]


def backtest(app, frame, run: int, product: str, balance: str, **env) -> None:
    settings = load_settings(env=env)
    run_backtest(app, frame, exchange=paper_exchange(settings, id_prefix=f"p{run}"), strategy=decision_model(settings),
                 settings=loop_settings(settings, product=product, flush_every=250), initial_balance=Decimal(balance),
                 config_hash="t", code_version="t", run_id=uuid.UUID(int=run))


@pytest.fixture(scope="module")
def frame():
    return read_candle_file(bundled_candles_path()).frame


@pytest.fixture(scope="module")
def rows(tmp_path_factory, frame):
    """Two runs, the second over the first's candles (its decisions name candles already in the log) with a tight
    daily-loss limit."""
    app = open_store(f"sqlite:///{tmp_path_factory.mktemp('pipeline')}/events.db")
    backtest(app, frame.iloc[:1400], 1, "BTC-USD", "10000")
    backtest(app, frame.iloc[900:1700], 2, "BTC-USD", "5000", RISK__MAX_DAILY_LOSS_PCT="0.5")
    rows = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(0, 10**9)]
    app.close()
    return rows


def store_of(rows, upto: int | None = None):
    kept = [r for r in rows if upto is None or r[0] <= upto]
    return SimpleNamespace(recorder=SimpleNamespace(
        select_log_rows=lambda after, limit, topics=(): [r for r in kept if r[0] > after][:limit]))


def alone(rows, upto: int | None = None) -> dict[str, str]:
    """Each money projection applied on its own (a walk group of one: applied and committed page by page)."""
    db = runner.open_readmodel(":memory:")
    for projection in money():
        runner.catch_up(store_of(rows, upto), db, [projection], batch_size=501)
    return runner.checksums(db, money())


def sizes_ending_after(rows, kind: str, count: int = 2) -> list[int]:
    """Page sizes (above the small-page path's) with a page that ends right after an event of ``kind``: the next
    page's walk then needs what that page changed, before it is written."""
    after = {n for n, topic, _ in rows if topic.endswith(f":{kind}")}
    found = [size for size in range(runner.SMALL_PAGE + 1, 3000)
             if any(k * size in after for k in range(1, rows[-1][0] // size + 1))]
    assert len(found) >= count, kind
    return found[:count]


def test_pages_written_while_the_next_is_walked_equal_each_projection_alone(rows):
    expected = alone(rows)
    assert expected["equity_curve"] and expected["position_history"]
    sizes = {*sizes_ending_after(rows, "OrderPlaced"), *sizes_ending_after(rows, "RunStarted", 1),
             *sizes_ending_after(rows, "CandleClosed"), 977}
    for size in sorted(sizes):
        db = runner.open_readmodel(":memory:")
        runner.catch_up(store_of(rows), db, money(), batch_size=size)
        assert runner.checksums(db, money()) == expected, size


def test_a_candle_recorded_again_pages_later_replaces_its_mark(tmp_path):
    """Corrections (sub-cent candles of no run) of candles whose marks pages before wrote, then new candles: the
    walk of a page knows the marks tables' frontier from the page before (``Carry.frontier``) and asks the table
    only when a candle of the page may have a row; the marks end one row per candle, as each projection's alone."""
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    price = Decimal("0.004210")

    def candle(i: int) -> Candle:
        close = price + Decimal(i % 13) / 10**6
        return Candle("SHIB-USD", "1h", t0 + timedelta(hours=i), price, close + Decimal("0.000005"), price, close,
                      Decimal(1000 + i))

    first = [candle(i) for i in range(1300)]
    app.record_candles(first, EventMeta(t0, actor="t"))
    fixed = [replace(c, close=c.close + Decimal("0.000001"), high=c.high + Decimal("0.000001")) for c in first[5:40]]
    assert app.record_candles(fixed, EventMeta(t0, actor="t"), on_conflict="correct").corrected == len(fixed)
    app.record_candles([candle(i) for i in range(1300, 2100)], EventMeta(t0, actor="t"))
    rows = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(0, 10**9)]
    app.close()
    expected = alone(rows)
    for size in (501, 640, 1303):  # (the corrections on a page of their own, or with candles before or after them)
        db = runner.open_readmodel(":memory:")
        runner.catch_up(store_of(rows), db, money(), batch_size=size)
        assert runner.checksums(db, money()) == expected, size
        for projection in money():
            assert db.execute(f"SELECT count(*), count(DISTINCT start_us) FROM {projection.name}__marks").fetchall() \
                == [(2100, 2100)]
        assert db.execute("SELECT close FROM pnl__marks WHERE start_us = ?",
                          [int((t0 + timedelta(hours=7)).timestamp() * 1_000_000)]).fetchall() == [(str(fixed[2].close),)]


def test_a_catch_up_that_stops_and_goes_on_equals_one_catch_up(rows):
    db = runner.open_readmodel(":memory:")
    middle = rows[len(rows) // 2][0]
    runner.catch_up(store_of(rows, middle), db, money(), batch_size=613)
    assert set(runner.positions(db).values()) == {middle}
    runner.catch_up(store_of(rows), db, money(), batch_size=613)
    assert runner.checksums(db, money()) == alone(rows)


def test_a_failed_write_is_raised_and_the_positions_stay_where_committed(tmp_path, frame):
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    backtest(app, frame.iloc[:600], 1, "BTC-USD", "10000")
    # equity beyond DECIMAL(38, 18): DuckDB refuses the page's equity_curve rows when they are written
    backtest(app, frame.iloc[600:900], 2, "ETH-USD", "1e21")
    rows = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(0, 10**9)]
    app.close()
    db = runner.open_readmodel(tmp_path / "rm.duckdb")
    pattern = r"'positions', 'pnl', 'risk_usage' failed on notifications (\d+)\.\.(\d+); .*positions stay at (\d+)"
    for _ in range(2):  # the same page fails again, the committed ones are kept
        with pytest.raises(runner.ProjectionFailed, match=pattern) as failure:
            runner.catch_up(store_of(rows), db, money(), batch_size=501)
        assert isinstance(failure.value.__cause__, duckdb.ConversionException)
        first, last, stay = map(int, re.search(pattern, str(failure.value)).groups())
        assert stay == first - 1 > 0 and failure.value.position == stay
        assert set(runner.positions(db).values()) == {stay}
        assert runner.checksums(db, money()) == alone(rows, stay)
