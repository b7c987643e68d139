"""The health probe reads the event log (SQLite and PostgreSQL), and the `alerts` read model."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import IncrementalIndicators, candles_of, run_backtest
from application.health.watch import HealthSample, HealthThresholds, HealthWatch, Threshold, evaluate
from application.trading.loop import DeterministicIds, TradingLoop
from domain.control import Run, RunMode
from domain.decision import Decision
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.monitoring.probe import HealthProbe, RunFollower
from api.bootstrap import health_thresholds
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from tests.support.recording import record

PAPER = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
BACKTEST = uuid.UUID("00000000-0000-4000-8000-0000000000b1")


@pytest.fixture(scope="module")
def candles():
    frame = read_candle_file(bundled_candles_path()).frame.iloc[:260]  # ~11 days with trades and stops
    return candles_of(frame, "BTC-USD", "1h")


class FixedClock:
    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at


def paper_loop(store, settings):
    return TradingLoop(store, paper_exchange(settings), decision_model(settings), IncrementalIndicators(),
                       loop_settings(settings), PAPER, DeterministicIds(PAPER), RunMode.PAPER)


def test_daily_loss_from_the_log_matches_the_risk_usage_read_model_as_the_run_goes(store_url, candles):
    settings = load_settings(env={})
    store = open_store(store_url)
    try:
        loop = paper_loop(store, settings)
        loop.start(candles[0].start, D(10000), "test", "test")
        follower = RunFollower(store)
        con = runner.open_readmodel(":memory:")
        compared = 0
        for i, candle in enumerate(candles):
            loop.step(candle)
            loop.flush()
            if i % 23 and i != len(candles) - 1:
                continue
            run = follower.refresh()
            runner.catch_up(store, con, runner.by_name(["risk_usage"]))
            start, loss = con.execute(
                "SELECT day_start_equity, daily_loss_pct FROM risk_usage WHERE run_id = ? ORDER BY day DESC LIMIT 1",
                [PAPER]).fetchall()[0]
            assert run.day_start_equity == start
            assert abs(run.daily_loss_pct() - loss) < D("0.0001")
            assert run.last_close_at == candle.end
            compared += 1
        assert compared > 10 and loop.portfolio.trades > 0
        assert RunFollower(store).refresh().equity() == run.equity()  # incremental == from scratch
    finally:
        store.close()


def test_probe_measures_market_data_age_of_the_active_run_and_ignores_backtests(tmp_path, candles):
    settings = load_settings(env={})
    url = f"sqlite:///{tmp_path}/events.db"
    store = open_store(url)
    try:
        loop = paper_loop(store, settings)
        loop.start(candles[0].start, D(10000), "test", "test")
        for candle in candles[:100]:
            loop.step(candle)
        loop.flush()
        clock = FixedClock(candles[99].end + timedelta(seconds=95))
        probe = HealthProbe(store, clock, data_path=tmp_path)
        first = probe.sample()
        assert first.market_data_age == D("95.0")
        assert first.memory > 0 and 0 <= first.disk <= 100 and first.cpu is not None
        assert first.api_error_rate is None and "exchange adapter" in first.notes["api_error_rate"]
        assert "strategy is rules" in first.notes["llm_response_rate"]
        # A backtest over later candles, recorded meanwhile, is not this run's market data.
        run_backtest(store, _frame(candles[100:200]), exchange=paper_exchange(settings),
                     strategy=decision_model(settings), settings=loop_settings(settings),
                     initial_balance=D(10000), config_hash="t", code_version="t", run_id=BACKTEST)
        clock.at += timedelta(hours=2)
        assert probe.sample().market_data_age == D(str(95 + 7200)) + D("0.0")
        report = evaluate(probe.sample(), health_thresholds(settings))
        assert report.check("market_data_age").status == "critical"
        loop.finish(clock.at, "stopped", "test over")
        ended = probe.sample()
        assert ended.market_data_age is None and ended.notes["market_data_age"] == "no paper or live run in progress"
    finally:
        store.close()


def _frame(subset):
    import pandas as pd

    return pd.DataFrame(
        {name: [getattr(c, name) for c in subset] for name in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex([c.start for c in subset], name="start"),
    )


def test_llm_response_rate_counts_made_and_failed_decisions_in_the_window(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    t0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
    try:
        record(store, Run.begin(PAPER, EventMeta(t0, run_id=PAPER), mode=RunMode.PAPER, product="BTC-USD",
                                granularity="1h", strategy="llm", config_hash="x", code_version="t",
                                initial_balance=D(1000)))
        for hour in range(10):
            at = t0 + timedelta(hours=hour + 1)
            meta = EventMeta(at, actor="strategy:llm", run_id=PAPER)
            common = dict(strategy="llm", product="BTC-USD", candle_start=at - timedelta(hours=1))
            if hour in (3, 7):
                record(store, Decision.fail(uuid.uuid4(), meta, kind="timeout", detail="slow", **common))
            else:
                record(store, Decision.make(uuid.uuid4(), meta, action="HOLD", size_pct=D(0), **common))
        clock = FixedClock(t0 + timedelta(hours=11))
        probe = HealthProbe(store, clock, data_path=tmp_path, llm_min_decisions=5)
        assert probe.sample().llm_response_rate == D(80)
        check = evaluate(probe.sample(), HealthThresholds()).check("llm_response_rate")
        assert (check.status, check.severity.value) == ("critical", "P1")
        few = HealthProbe(store, clock, data_path=tmp_path, llm_window=timedelta(hours=3), llm_min_decisions=5)
        sample = few.sample()
        assert sample.llm_response_rate is None and "fewer than the 5 needed" in sample.notes["llm_response_rate"]
    finally:
        store.close()


def test_an_empty_store_skips_the_trading_checks(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        sample = HealthProbe(store, FixedClock(datetime.now(timezone.utc)), data_path=tmp_path / "not" / "yet").sample()
        assert sample.daily_loss is None and sample.market_data_age is None and sample.disk is not None
        assert evaluate(sample, HealthThresholds()).check("daily_loss").status == "skipped"
    finally:
        store.close()


def test_alerts_read_model_has_one_row_per_episode_and_rebuild_equals_catch_up(store_url):
    store = open_store(store_url)
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc))
    values = {"daily_loss": D(1)}

    class NullSink:
        def alert(self, severity, title, details):
            pass

    def probe():
        clock.at += timedelta(minutes=1)
        return HealthSample(clock.at, daily_loss=values["daily_loss"])

    try:
        watch = HealthWatch(store, probe, HealthThresholds(), NullSink(), clock)
        for loss in ("1", "2.5", "2.6", "3.2", "1", "2.9", "0.5"):
            values["daily_loss"] = D(loss)
            watch.check()
        small = runner.open_readmodel(":memory:")
        runner.catch_up(store, small, runner.ALL_PROJECTIONS, 1)
        rows = small.execute(
            """SELECT check_name, episode, status, first_severity, severity, escalations, value, resolved_value
            FROM alerts ORDER BY episode""").fetchall()
        assert rows == [
            ("daily_loss", 1, "resolved", "P1", "P0", 1, D("3.2"), D(1)),
            ("daily_loss", 2, "resolved", "P1", "P1", 0, D("2.9"), D("0.5")),
        ]
        whole = runner.open_readmodel(":memory:")
        runner.rebuild(store, whole, runner.ALL_PROJECTIONS, 5000)
        assert runner.checksums(small)["alerts"] == runner.checksums(whole)["alerts"]
    finally:
        store.close()


def test_an_operator_halt_is_measured_from_the_control_stream_and_resume_recovers(tmp_path):
    from application.operations.controls import OperatorControls
    from application.trading.loop import DeterministicIds

    store = open_store(f"sqlite:///{tmp_path}/events.db")
    clock = FixedClock(datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc))
    sent = []

    class Sink:
        def alert(self, severity, title, details):
            sent.append((severity, title, details))

    try:
        probe = HealthProbe(store, clock, data_path=tmp_path, measure_process=False)
        calm = Threshold(D(101))  # the machine's own load must not page in this test
        thresholds = replace(HealthThresholds(), cpu=calm, system_memory=calm, disk=calm)
        watch = HealthWatch(store, probe, thresholds, Sink(), clock)
        assert watch.check().report.check("trading_halted").status == "ok"
        controls = OperatorControls(store, clock, DeterministicIds(PAPER))
        controls.halt("exchange maintenance", "P2", "operator:alice")
        watch.check(), watch.check()
        controls.resume("maintenance over", "operator:alice")
        watch.check()
        assert [s for s, _, _ in sent] == ["P1", "OK"]
        assert "by operator:alice (P2): exchange maintenance" in sent[0][2]
    finally:
        store.close()
