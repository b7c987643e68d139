"""Bots as an identity on one store: runs, controls, incidents, reconciliation and clean-up scoped to the bot;
client order ids carry it; runs and incidents recorded before bots had ids keep loading (and belong to
``<mode>-<product>``). On both backends, through the project's own mapper and application."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from application.operations.bots import list_bots
from application.operations.controls import ControlWatch, OperatorControls
from application.trading.reconciliation import close_abandoned_runs, rebuild_book, reconcile_paper
from domain.control import IncidentOpened, Run, RunMode, RunStarted, Severity
from domain.events import EventMeta
from domain.order import Order, OrderStatus, client_order_id
from infrastructure.clock import RandomIds
from infrastructure.venues.coinbase.schemas import order_id_of
from tests.support.recording import record

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


class Clock:
    def now(self) -> datetime:
        return T0 + timedelta(hours=1)


def meta(run_id=None, at=T0) -> EventMeta:
    return EventMeta(at, "test", run_id, None, run_id)


def begin(app, *, mode=RunMode.PAPER, product="BTC-USD", bot_id=None) -> uuid.UUID:
    run_id = uuid.uuid4()
    record(app, Run.begin(run_id, meta(run_id), mode=mode, product=product, granularity="1h", strategy="rules",
                          config_hash="h", code_version="t", initial_balance=Decimal(1000), bot_id=bot_id))
    return run_id


def legacy_run(app, *, product="BTC-USD") -> uuid.UUID:
    """A RunStarted as the code before bot ids stored it: no ``bot_id`` key at all."""
    run_id = uuid.uuid4()
    state = {"originator_id": str(run_id), "originator_version": 1, "occurred_at": "2024-02-01T00:00:00Z",
             "actor": "system", "correlation_id": str(run_id), "causation_id": None, "run_id": str(run_id),
             "mode": "paper", "product": product, "granularity": "1h", "strategy": "rules", "config_hash": "old",
             "code_version": "0.0.9", "initial_balance": "1000", "data_from": None, "data_to": None}
    app.recorder.insert_events([StoredEvent(run_id, 1, get_topic(RunStarted), json.dumps(state).encode())])
    return run_id


def test_a_run_and_an_incident_stored_before_bot_ids_load_and_belong_to_the_default_bot(app):
    old = legacy_run(app)
    incident = uuid.uuid4()
    state = {"originator_id": str(incident), "originator_version": 1, "occurred_at": "2024-02-01T00:00:00Z",
             "actor": "operator:ann", "correlation_id": None, "causation_id": None, "run_id": None,
             "severity": "P2", "kind": "venue", "details": "slow"}
    app.recorder.insert_events([StoredEvent(incident, 1, get_topic(IncidentOpened), json.dumps(state).encode())])
    started, opened = [e.event for e in app.read_log(0, 10)]
    assert isinstance(started, RunStarted) and started.bot_id is None and started.bot == "paper-btc-usd"
    assert isinstance(opened, IncidentOpened) and opened.bot_id is None
    assert app.repository.get(old).mode is RunMode.PAPER  # the aggregate loads too
    new = begin(app, bot_id="alpha")
    assert next(e.event for e in app.iter_log() if e.event.originator_id == new).bot == "alpha"
    assert [(b.bot_id, b.run_id) for b in list_bots(app)] == [("alpha", new), ("paper-btc-usd", old)]


def test_a_restart_ends_only_its_own_bots_abandoned_runs(app):
    legacy = legacy_run(app)  # the default bot's run from before bot ids
    mine = begin(app, bot_id="paper-btc-usd")
    eth = begin(app, product="ETH-USD", bot_id="paper-eth-usd")
    other_btc = begin(app, bot_id="probation-btc")  # another bot on the same product and mode
    current = begin(app, bot_id="paper-btc-usd")
    closed = close_abandoned_runs(app, RunMode.PAPER, current, lambda: meta(current), bot="paper-btc-usd")
    assert sorted(closed) == sorted([legacy, mine])
    states = {b.bot_id: b for b in list_bots(app)}
    assert states["paper-eth-usd"].status == "running" and states["probation-btc"].status == "running"
    assert app.repository.get(eth).ended is False and app.repository.get(other_btc).ended is False
    assert app.repository.get(mine).ended is True


def test_a_bot_rebuilds_and_reconciles_only_the_orders_its_runs_placed(app):
    mine, theirs = begin(app, bot_id="paper-btc-usd"), begin(app, bot_id="paper-eth-usd", product="ETH-USD")
    orders = {}
    for run_id, bot, product in ((mine, "paper-btc-usd", "BTC-USD"), (theirs, "paper-eth-usd", "ETH-USD")):
        order_id = uuid.uuid4()
        order = Order.place(order_id, meta(run_id), product=product, side="BUY", order_type="MARKET",
                            quantity=Decimal("0.1"), bot_id=bot)
        order.submit(meta(run_id))
        record(app, order)
        orders[bot] = order_id
    book = rebuild_book(app, RunMode.PAPER, bot="paper-btc-usd")
    assert list(book.orders) == [orders["paper-btc-usd"]]
    reconcile_paper(app, book, lambda: meta(uuid.uuid4()))
    assert app.repository.get(orders["paper-btc-usd"]).status is OrderStatus.CANCELLED
    assert app.repository.get(orders["paper-eth-usd"]).status is OrderStatus.SUBMITTED  # the other bot's is untouched
    assert app.repository.get(orders["paper-eth-usd"]).client_order_id == f"tc-paper-eth-usd-{orders['paper-eth-usd'].hex}"


def test_client_order_ids_carry_the_bot_and_old_ones_are_still_recognised():
    order_id = uuid.uuid4()
    assert client_order_id(order_id) == f"tc-{order_id.hex}"
    assert client_order_id(order_id, "paper-btc-usd") == f"tc-paper-btc-usd-{order_id.hex}"
    assert order_id_of(f"tc-{order_id.hex}") == order_id  # placed before bots had ids
    assert order_id_of(f"tc-paper-btc-usd-{order_id.hex}") == order_id
    assert order_id_of("someone-else-1") is None and order_id_of("tc-not-hex") is None


def test_halts_and_cancel_alls_are_scoped_to_a_bot_or_every_bot(app):
    begin(app, bot_id="alpha")
    begin(app, bot_id="beta")
    controls = OperatorControls(app, Clock(), RandomIds())
    cancels = {"alpha": 0, "beta": 0}

    def watch(bot):
        return ControlWatch(app, lambda: cancels.__setitem__(bot, cancels[bot] + 1) or [], bot=bot)

    alpha, beta = watch("alpha"), watch("beta")
    alpha.poll(), beta.poll()
    controls.halt("alpha's venue keys rotate", Severity.P0, "operator:ann", bot="alpha")
    alpha.poll(), beta.poll()
    assert alpha.halted and alpha.halt.halt_reason == "alpha's venue keys rotate" and not beta.halted
    assert cancels == {"alpha": 1, "beta": 0}
    controls.halt("exchange outage", Severity.P0, "operator:ann")  # every bot
    alpha.poll(), beta.poll()
    assert alpha.halted and beta.halted and beta.halt.halt_reason == "exchange outage"
    assert cancels == {"alpha": 2, "beta": 1}
    controls.resume("alpha checked", "operator:ann", bot="alpha")
    alpha.poll()
    assert alpha.halted and alpha.halt.halt_reason == "exchange outage"  # every bot's halt still holds
    controls.resume("outage over", "operator:ann")
    alpha.poll(), beta.poll()
    assert not alpha.halted and not beta.halted
    outcome = controls.open_incident(Severity.P0, "bad-fills", "beta fills look off", "operator:ann", bot="beta")
    beta.poll(), alpha.poll()
    assert beta.halted and not alpha.halted and outcome.halted is not None
    assert app.repository.get(outcome.incident_id).kind == "bad-fills"
    opened = next(e.event for e in app.iter_log() if isinstance(e.event, IncidentOpened))
    assert opened.bot_id == "beta"
    states = {b.bot_id: b for b in list_bots(app)}
    assert states["beta"].halted and states["beta"].halted_by == "bot" and not states["alpha"].halted


def test_a_bot_without_an_id_still_obeys_the_shared_stream_alone(app):
    """Callers that predate bots (ControlWatch without ``bot``) read the shared stream, as before."""
    controls = OperatorControls(app, Clock(), RandomIds())
    watch = ControlWatch(app, lambda: [])
    watch.poll()
    controls.halt("maintenance", Severity.P1, "operator:ann")
    watch.poll()
    assert watch.halted and watch.fleet is None


def test_a_bots_health_watch_follows_its_own_run_and_halts(app, tmp_path):
    from infrastructure.monitoring.probe import HealthProbe

    alpha = begin(app, bot_id="alpha")
    begin(app, bot_id="beta")  # started later: the latest run, but not alpha's
    probe = HealthProbe(app, Clock(), data_path=tmp_path, bot="alpha", measure_process=False)
    assert probe.follower.refresh().run_id == alpha
    controls = OperatorControls(app, Clock(), RandomIds())
    controls.halt("beta's keys rotate", Severity.P1, "operator:ann", bot="beta")
    assert probe.sample().trading_halted == 0  # another bot's halt
    controls.halt("alpha misbehaves", Severity.P1, "operator:ann", bot="alpha")
    sample = probe.sample()
    assert sample.trading_halted == 1 and "alpha misbehaves" in sample.details["trading_halted"]


def test_live_bots_share_the_venue_account_so_every_bots_fills_move_the_recorded_balances(app):
    """Positions and orders are the bot's own; the balances the venue should hold move with every bot's fills."""
    btc, eth = begin(app, mode=RunMode.LIVE, bot_id="live-btc"), begin(app, mode=RunMode.LIVE, product="ETH-USD",
                                                                       bot_id="live-eth")
    app.reconcile_balance("USD", Decimal(0), Decimal(10000), meta(btc), account="live")
    for run_id, bot, product, price in ((btc, "live-btc", "BTC-USD", Decimal(40000)),
                                        (eth, "live-eth", "ETH-USD", Decimal(2000))):
        order = Order.place(uuid.uuid4(), meta(run_id), product=product, side="BUY", order_type="MARKET",
                            quantity=Decimal("0.1"), bot_id=bot)
        order.submit(meta(run_id))
        order.accept(meta(run_id), venue_order_id=f"v-{bot}")
        order.fill(meta(run_id), fill_id=f"f-{bot}", quantity=Decimal("0.1"), price=price, fee=Decimal(1),
                   fee_currency="USD", liquidity="TAKER")
        record(app, order)
    book = rebuild_book(app, RunMode.LIVE, bot="live-btc")
    assert [o.product for o in book.orders.values()] == ["BTC-USD"]
    assert set(book.portfolio.positions) == {"BTC-USD"}
    assert book.balances == {"USD": Decimal(10000) - Decimal(4001) - Decimal(201), "BTC": Decimal("0.1"),
                             "ETH": Decimal("0.1")}
