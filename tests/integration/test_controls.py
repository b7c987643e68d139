"""Operator controls are events; the exchange owner notices cancel requests (both backends)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from application.operations.controls import ControlWatch, OperatorControls, working_orders
from application.trading.loop import DeterministicIds
from domain.control import AlreadyHalted, NotHalted, Run, RunMode, Severity
from domain.events import DomainError, EventMeta
from domain.order import Order
from tests.conftest import T0
from tests.support.recording import record


class SteppingClock:
    def __init__(self):
        self.at = T0

    def now(self):
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def controls(app):
    return OperatorControls(app, SteppingClock(), DeterministicIds(uuid.UUID(int=7)))


def types_of(app):
    return [(logged.event.event_type, logged.event.actor) for logged in app.iter_log()]


def test_halt_records_the_operator_and_blocks_a_second_lower_halt(app, controls):
    outcome = controls.halt("exchange flapping", "P1", "alice")
    assert outcome.control.halted and outcome.control.halted_by == "alice"
    assert not outcome.cancel_requested
    with pytest.raises(AlreadyHalted):
        controls.halt("again", Severity.P2, "bob")
    assert types_of(app) == [("ControlStarted", "alice"), ("TradingHalted", "alice")]


def test_p0_on_a_halted_bot_still_requests_cancels(app, controls):
    controls.halt("slow venue", "P2", "alice")
    outcome = controls.halt("runaway orders", "P0", "bob")
    assert outcome.already_halted and outcome.cancel_requested
    assert outcome.control.cancel_requests == 1
    assert types_of(app)[-1] == ("CancelAllRequested", "bob")
    # the original halt's reason is kept: nothing recorded is changed
    assert app.get_trading_control().halt_reason == "slow venue"


def test_resume_requires_a_halt_and_a_reason(app, controls):
    with pytest.raises(NotHalted):
        controls.resume("nothing to resume", "alice")
    controls.halt("x", "P3", "alice")
    with pytest.raises(DomainError, match="reason"):
        controls.resume("  ", "alice")
    assert controls.resume("checked balances", "carol").halted is False


def test_blank_inputs_are_refused_with_the_field_named(controls):
    with pytest.raises(DomainError, match="reason"):
        controls.halt("", "P1", "alice")
    with pytest.raises(DomainError, match="actor"):
        controls.halt("why", "P1", "")
    with pytest.raises(DomainError, match="kind"):
        controls.open_incident("P2", "", "details", "alice")
    with pytest.raises(ValueError):
        controls.halt("why", "P9", "alice")


def test_p0_incident_halts_and_requests_cancels_then_resolves_once(app, controls):
    outcome = controls.open_incident("P0", "exchange-outage", "Coinbase 503 for 5 min", "alice")
    assert outcome.halted is not None and outcome.halted.cancel_requested
    assert [t for t, _ in types_of(app)] == [
        "IncidentOpened", "ControlStarted", "TradingHalted", "CancelAllRequested"]
    controls.resolve_incident(outcome.incident_id, "venue back", "alice")
    with pytest.raises(DomainError, match="already resolved"):
        controls.resolve_incident(outcome.incident_id, "again", "alice")
    assert app.get_trading_control().halted  # resolving does not resume


def test_p2_incident_does_not_halt(app, controls):
    outcome = controls.open_incident("P2", "slow-llm", "p95 9 s", "alice")
    assert outcome.halted is None
    assert app.get_trading_control() is None


def test_control_watch_serves_each_new_request_once(app, controls):
    served = []
    watch = ControlWatch(app, on_cancel_all=lambda: served.append(1) or [])
    controls.cancel_all("before the run started", "alice")
    watch.poll()
    assert served == []  # not halted: an old request was already served by an earlier run
    controls.cancel_all("now", "alice")
    watch.poll()
    watch.poll()
    assert served == [1]
    controls.halt("stop", "P0", "bob")
    watch.poll()
    assert served == [1, 1] and watch.halted


def test_a_watch_starting_under_a_p0_halt_cancels_once(app, controls):
    controls.halt("crash during incident", "P0", "alice")
    served = []
    watch = ControlWatch(app, on_cancel_all=lambda: served.append(1) or [])
    watch.poll()
    watch.poll()
    assert served == [1]


def _order(app, run_id, *, fill: bool = False):
    order_id = uuid.uuid4()
    meta = EventMeta(T0, "system", None, None, run_id)
    order = Order.place(order_id, meta, product="BTC-USD", side="BUY", order_type="LIMIT",
                        quantity=Decimal("0.1"), limit_price=Decimal("40000"))
    order.submit(meta)
    order.accept(meta, venue_order_id=f"v-{order_id}")
    if fill:
        order.fill(meta, fill_id="f1", quantity=Decimal("0.1"), price=Decimal("40000"),
                   fee=Decimal("4"), fee_currency="USD", liquidity="MAKER")
    record(app, order)
    return order_id


def test_working_orders_are_those_of_paper_and_live_runs_still_open(app):
    runs = {}
    for mode in (RunMode.BACKTEST, RunMode.PAPER):
        run_id = uuid.uuid4()
        record(app, Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode=mode, product="BTC-USD",
                              granularity="ONE_HOUR", strategy="rules", config_hash="h", code_version="t"))
        runs[mode] = run_id
    _order(app, runs[RunMode.BACKTEST])
    working = _order(app, runs[RunMode.PAPER])
    _order(app, runs[RunMode.PAPER], fill=True)
    assert [order.id for order in working_orders(app)] == [working]
