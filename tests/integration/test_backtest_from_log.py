"""Backtests over the candles the log holds: read back by product and bar size (newest correction
wins), planned with the indicators' warm-up, run without writing a candle again, and always ended."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import NotEnoughCandles, candles_of, plan_backtest, run_backtest, run_planned_backtest
from application.trading.candle_history import import_candles, logged_candles
from domain.events import EventMeta
from domain.market import Candle, CandleConflict
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner

RUN = uuid.UUID("00000000-0000-4000-8000-00000000b001")


@pytest.fixture(scope="module")
def month():
    frame = read_candle_file(bundled_candles_path()).frame
    return candles_of(frame[(frame.index >= "2018-01-01") & (frame.index < "2018-02-01")], "BTC-USD", "1h")


def imported(url: str, candles: list[Candle]):
    store = open_store(url)
    result = import_candles(store, candles, EventMeta(candles[-1].end, actor="import"))
    assert result.recorded == len(candles)
    return store


def run_over_log(store, plan, run_id=RUN):
    settings = load_settings(env={})
    return run_planned_backtest(store, plan, exchange=paper_exchange(settings), strategy=decision_model(settings),
                                settings=loop_settings(settings, flush_every=250), initial_balance=D(10000),
                                config_hash="t", code_version="t", run_id=run_id)


def test_reimport_is_a_no_op_and_a_differing_candle_is_refused_or_corrected(store_url, month):
    store = imported(store_url, month)  # SQLite and PostgreSQL
    again = import_candles(store, month, EventMeta(month[-1].end, actor="import"))
    assert (again.recorded, again.duplicates, again.conflicts) == (0, len(month), [])
    changed = [Candle(c.product, c.granularity, c.start, c.open, c.high, c.low, c.close, c.volume + D("0.00000000000002"))
               for c in month[:3]]
    refused = import_candles(store, changed, EventMeta(month[-1].end, actor="import"))
    assert refused.recorded == 0 and len(refused.conflicts) == 3 and isinstance(refused.conflicts[0], CandleConflict)
    corrected = import_candles(store, changed, EventMeta(month[-1].end, actor="import"), on_conflict="correct")
    assert corrected.corrected == 3
    logged = logged_candles(store, "BTC-USD", "1h")
    assert logged.count == len(month) and logged.candles[0].volume == changed[0].volume  # newest correction wins
    assert logged_candles(store, "BTC-USD", "5m").count == 0 and logged_candles(store, "ETH-USD", "1h").count == 0
    store.close()


def test_plan_takes_the_warm_up_before_the_range_and_refuses_too_few(tmp_path, month):
    store = imported(f"sqlite:///{tmp_path / 'e.db'}", month)
    logged = logged_candles(store, "BTC-USD", "1h")
    start = month[100].start
    plan = plan_backtest(logged, start, start + timedelta(days=1), 59)
    assert len(plan.candles) == 24 and len(plan.warmup) == 59 and plan.warmup[-1].end == start
    with pytest.raises(NotEnoughCandles, match="too few BTC-USD 1h candles"):
        plan_backtest(logged, month[0].start, month[20].start, 59)  # 20 candles, nothing before them
    with pytest.raises(NotEnoughCandles, match="no BTC-USD 1h candles between 2030") as refused:
        plan_backtest(logged, month[0].start.replace(year=2030), None, 59)
    assert f"the log holds {len(month)} BTC-USD 1h candles from 2018-01-01T00:00:00+00:00" in str(refused.value)
    gappy = logged_candles(store, "BTC-USD", "1h")
    del gappy.candles[10:15]
    assert [(g.missing_bars) for g in gappy.gaps()] == [5] and "1 gap(s) (5 bars missing)" in gappy.describe()
    store.close()


def test_backtest_over_the_log_writes_no_candle_and_the_money_read_model_still_works(tmp_path, month):
    store = imported(f"sqlite:///{tmp_path / 'e.db'}", month)
    before = store.max_notification_id()
    plan = plan_backtest(logged_candles(store, "BTC-USD", "1h"), None, None, 59)
    summary = run_over_log(store, plan)
    written = Counter(e.event.event_type for e in store.iter_log(after=before))
    assert written["CandleClosed"] == 0 and written["CandleCorrected"] == 0
    assert summary.candles == len(month) and summary.events == sum(written.values())
    assert summary.events / summary.candles < 1.5  # every step was a candle event more before
    assert summary.fills > 0
    con = runner.open_readmodel(tmp_path / "rm.duckdb")
    runner.catch_up(store, con, runner.ALL_PROJECTIONS, 5000)
    equity, points = con.execute("SELECT arg_max(equity, candle_end), count(*) FROM equity_curve WHERE run_id = ?",
                                 [str(RUN)]).fetchone()
    assert points == len(month) and equity == summary.final_equity  # marks found through the decisions
    assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == len(month)
    con.close()
    store.close()


def test_a_run_whose_batch_cannot_be_written_still_records_run_ended_failed(tmp_path, month):
    """The old path records candles per step; a differing candle in the batch makes the write fail."""
    store = imported(f"sqlite:///{tmp_path / 'e.db'}", month[:100])
    frame = read_candle_file(bundled_candles_path()).frame
    frame = frame[(frame.index >= "2018-01-01") & (frame.index < "2018-01-06")].copy()
    frame.iloc[50, frame.columns.get_loc("volume")] += D("0.00000000000002")
    settings = load_settings(env={})
    with pytest.raises(CandleConflict):
        run_backtest(store, frame, exchange=paper_exchange(settings), strategy=decision_model(settings),
                     settings=loop_settings(settings, flush_every=500), initial_balance=D(10000), config_hash="t",
                     code_version="t", run_id=RUN)
    ended = [e.event for e in store.iter_log() if e.event.event_type == "RunEnded"]
    assert len(ended) == 1 and ended[0].status == "failed" and "differs from the recorded one" in ended[0].reason
    store.close()
