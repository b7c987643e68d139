"""HOLD decisions recorded as a batch of columns (a backtest's quiet candles): stored exactly as the one-event
path stores each DecisionMade, validated per column, and refused whole when one value anywhere is bad."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from api.bootstrap import open_store
from domain.control import Run
from domain.events import EventMeta, EventValidationError
from domain.hold_decisions import HoldDecisions
from domain.strategy_rules import INPUT_NAMES

RUN = uuid.UUID("00000000-0000-4000-8000-00000000c0d1")
T0 = datetime(2021, 3, 1, tzinfo=timezone.utc)
WEIRD_FLOATS = [None, 1e-5, 1e16, -0.0, 5.0, 1 / 3, 123.456, -87.25]


def batch(rows: int = 300) -> HoldDecisions:
    inputs = {name: ([k % 3 == 0 for k in range(rows)] if name not in ("wt1", "wt2", "rsi")
                     else [WEIRD_FLOATS[k % len(WEIRD_FLOATS)] for k in range(rows)]) for name in INPUT_NAMES}
    made = HoldDecisions(RUN, "rules", "BTC-USD", inputs)
    for k in range(rows):
        rationale = "warming up" if k % 11 == 0 else f'flat, no entry signal (wt1={k:.1f}, "q" \\ é)'
        made.add((RUN.int + 7919 * (k + 1)) % (1 << 128), T0 + timedelta(hours=k + 1), T0 + timedelta(hours=k), k,
                 "0" if k % 2 else "0.0123", rationale)
    return made


def run_started():
    run = Run.begin(RUN, EventMeta(T0, correlation_id=RUN, run_id=RUN), mode="backtest", product="BTC-USD",
                    granularity="1h", strategy="rules", config_hash="t", code_version="t", initial_balance=1000)
    return run.collect_events()


@pytest.fixture
def store(tmp_path):
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    yield app
    app.close()


def test_a_batch_is_stored_as_the_one_event_path_stores_each_decision(store, tmp_path):
    holds = batch()
    one_by_one = open_store(f"sqlite:///{tmp_path}/reference.db")
    try:
        store.record_in_order([*run_started(), holds])
        one_by_one.record_in_order([*run_started(), *holds.events()])
        rows = store.recorder.select_log_rows(0, 1000)
        assert len(rows) == 301
        assert rows == one_by_one.recorder.select_log_rows(0, 1000)  # the same bytes, in the same order
        assert store._stored_rows.fallbacks == 0
        assert [e.event for e in store.iter_log()][1:] == holds.events()
    finally:
        one_by_one.close()


@pytest.mark.parametrize("field, row, bad, named", [
    ("candle_start", 217, datetime(2021, 3, 10), "candle_start (row 217)"),
    ("occurred_at", 0, "not a time", "occurred_at (row 0)"),
    ("rationale", 299, "x" * 201, "rationale (row 299)"),
    ("position_quantity", 150, 12, "inputs.position_quantity (row 150)"),
    ("inputs", 88, [1, 2], "inputs.rsi (row 88)"),
])
def test_one_bad_value_anywhere_refuses_the_whole_batch_naming_field_and_value(store, field, row, bad, named):
    holds = batch()
    if field == "inputs":
        holds.inputs["rsi"][holds.rows[row]] = bad
    else:
        getattr(holds, field)[row] = bad
    before = store.max_notification_id()
    with pytest.raises(EventValidationError) as refused:
        store.record_in_order([*run_started(), holds])
    (problem,) = refused.value.problems
    assert problem[0] == named and problem[1] == bad
    assert named in str(refused.value)
    assert store.max_notification_id() == before  # nothing of the batch, nor what came with it
