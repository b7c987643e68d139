"""One contract, run against SQLite and PostgreSQL (the `store_url` fixture)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest

from api.bootstrap import open_store
from application.errors import ConcurrencyConflict, NotFound
from domain.config import CONFIG_LEDGER_ID
from domain.control import AlreadyHalted, Run
from domain.events import EventMeta, EventValidationError
from domain.market import Candle, candle_id
from domain.order import IllegalOrderTransition, Order, OrderStatus
from infrastructure.eventstore.chain import verify_chain
from tests.conftest import T0
from tests.support.recording import funded_account, record


def candles(n, start=T0, close="105"):
    return [
        Candle("BTC-USD", "1h", start + timedelta(hours=i), D("100"), D("110"), D("90"), D(close), D("3.5"))
        for i in range(n)
    ]


def place(app, meta, qty="1"):
    order_id = uuid.uuid4()
    record(app, Order.place(order_id, meta, product="BTC-USD", side="BUY", order_type="MARKET", quantity=D(qty)))
    return order_id


def fill(app, order_id, meta, fill_id, qty):
    """Apply a fill to the stored order and record it; False when this fill_id was applied before."""
    order = app.repository.get(order_id)
    applied = order.fill(meta, fill_id=fill_id, quantity=D(qty), price=D("100.5"), fee=D("0.06"),
                         fee_currency="USD", liquidity="TAKER")
    record(app, order)
    return applied


def test_candles_recorded_in_batches_read_back_in_time_order(app, meta):
    app.batch_size = 7
    result = app.record_candles(candles(20), meta)
    assert result.recorded == 20
    logged = app.read_log(0, 100)
    starts = [e.event.start for e in logged]
    assert starts == sorted(starts) and len(starts) == 20
    assert logged[0].event.close == D("105") and logged[0].event.occurred_at == T0 + timedelta(hours=1)


def test_same_candle_twice_is_a_no_op(app, meta):
    app.record_candles(candles(5), meta)
    before = app.max_notification_id()
    result = app.record_candles(candles(5), meta)
    assert (result.recorded, result.duplicates) == (0, 5)
    assert app.max_notification_id() == before


def test_different_candle_for_same_start_is_refused_and_nothing_written(app, meta):
    app.record_candles(candles(3), meta)
    before = len(app.read_log(0, 100))
    result = app.record_candles(candles(3, close="106"), meta)
    assert result.recorded == 0 and len(result.conflicts) == 3
    assert "close recorded 105 offered 106" in str(result.conflicts[0])
    assert len(app.read_log(0, 100)) == before


def test_different_candle_recorded_as_correction_when_asked(app, meta):
    app.record_candles(candles(2), meta)
    result = app.record_candles(candles(2, close="107"), meta, on_conflict="correct")
    assert result.corrected == 2
    stored = app.repository.get(candle_id("BTC-USD", "1h", T0))
    assert stored.values[3] == D("107") and stored.corrections == 1
    corrected = [e.event for e in app.read_log(0, 100) if e.event.event_type == "CandleCorrected"]
    assert corrected[0].previous_close == D("105")


def test_batch_with_new_and_known_candles_records_only_the_new(app, meta):
    app.record_candles(candles(3), meta)
    result = app.record_candles(candles(6), meta)
    assert (result.recorded, result.duplicates) == (3, 3)


def test_invalid_candle_is_refused_before_anything_is_written(app, meta):
    good = candles(2)
    bad = Candle("BTC-USD", "1h", T0 + timedelta(hours=2), D("100"), D("80"), D("90"), D("85"), D("1"))
    with pytest.raises(EventValidationError, match="high"):
        app.record_candles([*good, bad], meta)
    assert app.read_log(0, 10) == []


def test_order_lifecycle_and_duplicate_fill(app, meta):
    order_id = place(app, meta, "1")
    order = app.repository.get(order_id)
    order.submit(meta)
    order.accept(meta, "venue-7")
    record(app, order)
    assert fill(app, order_id, meta, "f-1", "0.25") is True
    assert fill(app, order_id, meta, "f-1", "0.25") is False
    assert fill(app, order_id, meta, "f-2", "0.75") is True
    order = app.repository.get(order_id)
    assert order.status is OrderStatus.FILLED and order.filled_quantity == D("1")
    types = [e.event.event_type for e in app.read_log(0, 100)]
    assert types == ["OrderPlaced", "OrderSubmitted", "OrderAccepted", "OrderPartiallyFilled", "OrderFilled"]


def test_illegal_transition_raises_and_records_nothing(app, meta):
    order_id = place(app, meta)
    order = app.repository.get(order_id)
    with pytest.raises(IllegalOrderTransition):
        order.accept(meta, "v")
    record(app, order)
    assert len(app.read_log(0, 10)) == 1


def test_unknown_run_or_incident_is_not_found(app, meta):
    with pytest.raises(NotFound):
        app.end_run(uuid.uuid4(), "completed", "end of data", meta)
    with pytest.raises(NotFound):
        app.resolve_incident(uuid.uuid4(), "never opened", meta)


def test_stale_writer_gets_conflict_and_nothing_is_lost(store_url, meta):
    first, second = open_store(store_url), open_store(store_url)
    try:
        order_id = place(first, meta)
        stale = second.repository.get(order_id)
        fresh = first.repository.get(order_id)
        fresh.submit(meta)
        record(first, fresh)
        stale.cancel(meta, "operator")
        with pytest.raises(ConcurrencyConflict, match="another writer"):
            record(second, stale)
        assert first.repository.get(order_id).status is OrderStatus.SUBMITTED
        assert verify_chain(first.recorder).ok
    finally:
        first.close()
        second.close()


def test_halt_resume_config_incident_run_account_commands(app, meta):
    app.operator_halt("manual check", "P1", meta)
    with pytest.raises(AlreadyHalted):
        app.operator_halt("again", "P1", meta)
    app.resume_trading("checked", meta)
    assert app.change_config("risk.max_daily_loss_pct", "3", "initial", "h1", meta) is True
    assert app.change_config("risk.max_daily_loss_pct", "3", "same", "h1", meta) is False
    app.set_config_baseline({"risk.max_daily_loss_pct": "3"}, "h1", meta)
    app.change_config("risk.max_daily_loss_pct", "2", "tighter", "h2", meta)
    assert app.repository.get(CONFIG_LEDGER_ID).drift() == {"risk.max_daily_loss_pct": ("3", "2")}
    incident_id = uuid.uuid4()
    app.open_incident(incident_id, meta, severity="P2", kind="feed", details="gap")
    app.resolve_incident(incident_id, "backfilled", meta)
    run_id = uuid.uuid4()
    record(app, Run.begin(run_id, meta, mode="backtest", product="BTC-USD", granularity="1h", strategy="rules",
                          config_hash="h2", code_version="0.1.0"))
    app.end_run(run_id, "completed", "end of data", meta)
    record(app, funded_account("main", D("10000"), meta))
    types = [e.event.event_type for e in app.read_log(0, 100)]
    assert types == [
        "ControlStarted", "TradingHalted", "TradingResumed", "ConfigLedgerStarted", "ConfigChanged",
        "ConfigBaselineSet", "ConfigChanged", "IncidentOpened", "IncidentResolved", "RunStarted", "RunEnded",
        "AccountOpened", "FundsDeposited",
    ]
    assert verify_chain(app.recorder).ok


def test_envelope_survives_the_round_trip(app):
    run_id, correlation = uuid.uuid4(), uuid.uuid4()
    meta = EventMeta(T0, actor="operator:alice", correlation_id=correlation, causation_id=None, run_id=run_id)
    app.operator_halt("x", "P1", meta)
    event = app.read_log(0, 10)[-1].event
    assert (event.actor, event.correlation_id, event.run_id, event.occurred_at) == ("operator:alice", correlation, run_id, T0)


def test_log_pages_with_a_stable_cursor(app, meta):
    app.record_candles(candles(25), meta)
    seen, after = [], 0
    while page := app.read_log(after, 10):
        seen += [e.notification_id for e in page]
        after = page[-1].notification_id
    assert seen == sorted(seen) and len(seen) == 25
