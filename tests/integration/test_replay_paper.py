"""Replaying a paper-trading day: two runs (a restart), an operator's halt and resume between candles."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange, risk_limits
from api.bootstrap import replay_exchange, scratch_store
from application.trading.backtest import IncrementalIndicators, candles_of
from application.operations.controls import OperatorControls
from application.replay.timeline import build_timeline, load_day
from application.replay.verify import verify_day
from application.trading.loop import DeterministicIds, TradingLoop
from domain.control import RunMode
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings

DAY = date(2019, 1, 4)
RUN_A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
RUN_B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
HALT_AT = datetime(2019, 1, 4, 16, 30, tzinfo=timezone.utc)  # the rules go LONG at 18:00 that day
RESUME_AT = datetime(2019, 1, 4, 18, 30, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.at = HALT_AT

    def now(self):
        return self.at


def paper_run(store, settings, candles, history, run_id, ids, controls_at=None):
    """What application/trading/live_runner.py does for a paper run, minus the feed: warm, start, then per candle
    re-read the control stream and step."""
    indicators = IncrementalIndicators()
    for candle in history:
        indicators.on_candle(candle)
    loop = TradingLoop(store, paper_exchange(settings, id_prefix=f"paper-{run_id.hex[:8]}"), decision_model(settings),
                       indicators, loop_settings(settings), run_id, ids, RunMode.PAPER)
    loop.warm(history[-24:])
    loop.start(candles[0].start, Decimal(10000), "paper-hash", "test")
    for candle in candles:
        if controls_at:
            controls_at(candle)
        loop.refresh_control(store.get_trading_control())
        loop.step(candle)
    return loop


@pytest.fixture(scope="module")
def paper_day(tmp_path_factory):
    settings = load_settings(env={})
    frame = read_candle_file(bundled_candles_path()).frame
    frame = frame[(frame.index >= "2018-12-20") & (frame.index < "2019-01-05")]
    all_candles = candles_of(frame, "BTC-USD", "1h")
    first = next(i for i, c in enumerate(all_candles) if c.start >= datetime(2019, 1, 3, tzinfo=timezone.utc))
    crash = next(i for i, c in enumerate(all_candles) if c.start >= datetime(2019, 1, 4, 20, tzinfo=timezone.utc))
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('paper')}/events.db")
    clock = Clock()
    controls = OperatorControls(store, clock, DeterministicIds(uuid.UUID(int=3)))

    def operator(candle):
        if candle.end == datetime(2019, 1, 4, 17, tzinfo=timezone.utc):
            controls.halt("venue looks wrong", "P1", actor="operator:bob")
        if candle.end == datetime(2019, 1, 4, 19, tzinfo=timezone.utc):
            clock.at = RESUME_AT
            controls.resume("venue fine again", actor="operator:bob")

    # random-looking ids, as RandomIds would give: not derivable from the run id
    paper_run(store, settings, all_candles[first:crash], all_candles[:first], RUN_A,
              DeterministicIds(uuid.UUID(int=11)), operator)  # ... and its process dies: no RunEnded
    paper_run(store, settings, all_candles[crash:], all_candles[:crash], RUN_B, DeterministicIds(uuid.UUID(int=12)))
    yield store, settings
    store.close()


def verify(store, settings, run_id=None):
    log = load_day(store, DAY, run_id=run_id)
    limits = risk_limits(settings)
    scratch = scratch_store()
    try:
        return log, verify_day(log, limits, loop_settings(settings, flush_every=10_000), replay_exchange(settings, log),
                               scratch, lambda: list(scratch.recorded))
    finally:
        scratch.close()


def test_the_run_with_most_decisions_is_chosen_and_the_operators_halt_shows(paper_day):
    store, settings = paper_day
    log = load_day(store, DAY)
    assert log.run.run_id == RUN_A and "paper run" in log.chosen_because
    assert {r.run_id for r in log.runs} == {RUN_A, RUN_B}
    timeline = build_timeline(log, risk_limits(settings))
    halt = next(row for row in timeline.rows if row.type == "TradingHalted")
    assert halt.actor == "operator:bob" and halt.state["halted"] is True
    during = [row for row in timeline.rows if row.type == "RiskAssessed" and HALT_AT < row.at < RESUME_AT]
    assert [(row.event.approved, row.event.rule) for row in during] == [(False, "halted")]  # past the cooldown: an operator halt waits for the operator
    assert "LONG" in during[0].summary
    resumed = next(row for row in timeline.rows if row.type == "TradingResumed")
    assert resumed.state["halted"] is False


def test_verify_replays_the_operators_halt_between_candles_and_both_runs_are_identical(paper_day):
    # Without re-reading the control stream before each candle the re-run would buy at 18:00.
    store, settings = paper_day
    log, report = verify(store, settings)
    assert report.identical, report.divergence
    assert not report.ids_compared and any("ids not compared" in note for note in report.notes)
    _, second = verify(store, settings, RUN_B)
    assert second.identical, second.divergence
