"""The replay state machine and the verify comparison, on events made by the domain's own aggregates."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from application.replay.describe import category_of, describe
from application.replay.rerun import RecordedDecisions, Rerun
from application.replay.book import ReplayBook, RunInfo
from application.replay.verify import compare
from domain.account import Account
from domain.control import Severity, TradingControl, run_control_id
from domain.decision import Decision, DecisionContext, TradeActionKind
from domain.events import EventMeta
from domain.market import Candle, CandleRecord
from domain.order import Order
from domain.risk import RiskLimits

RUN = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
T0 = datetime(2024, 3, 5, 0, 0, tzinfo=timezone.utc)
INFO = RunInfo(RUN, "backtest", "BTC-USD", "1h", "rules", "h" * 64, "test", Decimal(10000), T0)


def meta(hours: float, actor: str = "system", correlation=None) -> EventMeta:
    return EventMeta(T0 + timedelta(hours=hours), actor, correlation, None, RUN)


def candle_event(hour: int, close: str):
    c = Candle("BTC-USD", "1h", T0 + timedelta(hours=hour - 1), Decimal(close), Decimal(close), Decimal(close),
               Decimal(close), Decimal(1))
    return CandleRecord.closed_event(c, meta(hour, "market"))


def decision_events(hour: int, action: str = "HOLD", n: int = 1):
    decision_id = uuid.uuid5(RUN, str(n))
    d = Decision.make(decision_id, meta(hour, "strategy:rules", decision_id), strategy="rules", product="BTC-USD",
                      candle_start=T0 + timedelta(hours=hour - 1), action=action,
                      size_pct=Decimal(25) if action != "HOLD" else Decimal(0), rationale=f"{action} because", inputs={})
    return d, d.collect_events()


def order_events(hour: int, side: str, qty: str, price: str, fee: str, n: int, decision_id=None, stop=None, key=None):
    order_id = uuid.uuid5(RUN, key or f"order{n}")
    o = Order.place(order_id, meta(hour, correlation=decision_id), product="BTC-USD", side=side, order_type="MARKET",
                    quantity=Decimal(qty), decision_id=decision_id, stop_loss_price=stop)
    o.submit(meta(hour))
    o.accept(meta(hour, "exchange"), f"paper-x-order-{n}")
    o.fill(meta(hour, "exchange"), fill_id=f"paper-x-{n}", quantity=Decimal(qty), price=Decimal(price),
           fee=Decimal(fee), fee_currency="USD", liquidity="TAKER")
    return o.collect_events()


def funded_book() -> ReplayBook:
    book = ReplayBook(INFO, RiskLimits(max_daily_loss_pct=Decimal(3)))
    account = Account.open_account(f"run-{RUN}", "USD", meta(0))
    account.deposit(Decimal(10000), meta(0))
    for e in account.collect_events():
        book.apply(e)
    return book


def test_position_pnl_and_daily_loss_follow_candles_and_fills():
    book = funded_book()
    book.apply(candle_event(1, "100"))
    _, events = decision_events(1, "LONG", 1)
    for e in events:
        book.apply(e)
    assert book.day_start_equity == Decimal(10000)
    for e in order_events(1, "BUY", "10", "100", "1", 1, stop=Decimal(98)):
        book.apply(e)
    state = book.snapshot()
    assert state["position"][0]["quantity"] == "10" and state["cash"] == "8999.00" and state["fees"] == "1.00"
    assert book.bracket is not None and book.bracket.stop_loss_price == Decimal(98)
    book.apply(candle_event(2, "90"))
    for e in decision_events(2, "HOLD", 2)[1]:
        book.apply(e)
    state = book.snapshot()
    assert state["unrealized_pnl"] == "-100.00" and state["equity"] == "9899.00"
    assert state["daily_loss_used_pct"] == "1.0100" and state["daily_loss_limit_pct"] == "3"
    for e in order_events(2, "SELL", "10", "90", "1", 2):
        book.apply(e)
    state = book.snapshot(full=True)
    assert state["position"] == [] and state["realized_pnl"] == "-100.00" and state["trades"] == 1
    assert state["bracket"] is None and state["orders"] == []
    assert book.fills == 2 and book.orders_accepted == 2 and book.venue_prefix == "paper-x"


def test_a_new_utc_day_restarts_the_daily_loss_from_that_days_first_equity():
    book = funded_book()
    book.apply(candle_event(23, "100"))
    for e in decision_events(23)[1]:
        book.apply(e)
    book.apply(candle_event(25, "100"))
    for e in decision_events(25, n=2)[1]:
        book.apply(e)
    assert book.day == (T0 + timedelta(days=1)).date() and book.daily_loss_pct() == 0


def test_the_runs_own_halt_and_its_lapse_reset_the_loss_streak():
    book = funded_book()
    book.portfolio.consecutive_losses = 5
    control = TradingControl.start(meta(1, "risk"), run_control_id(RUN))
    control.halt("consecutive_losses: 5 losing trades in a row", Severity.P1, meta(1, "risk"))
    control.resume("cooldown elapsed after an automatic halt", meta(2, "risk"))
    events = control.collect_events()
    for e in events[:2]:
        book.apply(e)
    assert book.snapshot()["halted"] is True and book.halts == 1
    book.apply(events[2])
    assert book.snapshot()["halted"] is False and book.portfolio.consecutive_losses == 0
    assert len(book.control_events) == 3


def test_clone_is_independent():
    book = funded_book()
    copy = book.clone()
    copy.portfolio.deposit(Decimal(5))
    assert book.portfolio.cash == Decimal(10000) and copy.portfolio.cash == Decimal(10005)


def test_recorded_decisions_answer_each_candle_with_its_recorded_decision_and_fail_for_unknown_ones():
    decision, events = decision_events(3, "LONG")
    model = RecordedDecisions({events[0].candle_start: events[0]}, "rules")
    candle = Candle("BTC-USD", "1h", events[0].candle_start, *(Decimal(1),) * 5)
    context = DecisionContext("BTC-USD", candle, {}, [], Decimal(0), None, Decimal(1), Decimal(1))
    answer = model.decide(context)
    assert answer.action.action is TradeActionKind.LONG and answer.action.size_pct == 25.0
    assert answer.action.rationale == "LONG because" and answer.failure_kind is None
    other = Candle("BTC-USD", "1h", candle.start + timedelta(hours=1), *(Decimal(1),) * 5)
    missing = model.decide(DecisionContext("BTC-USD", other, {}, [], Decimal(0), None, Decimal(1), Decimal(1)))
    assert missing.failure_kind == "error" and "no decision recorded" in missing.failure_detail


def test_compare_names_the_first_field_that_differs_with_both_values():
    recorded = order_events(1, "BUY", "1", "100", "0.6", 1)
    replayed = order_events(1, "BUY", "1", "100", "0.1", 1)
    report = compare([(10 + i, e) for i, e in enumerate(recorded)], Rerun(replayed, True, funded_book()))
    assert not report.identical
    d = report.divergence
    assert (d.field, d.recorded, d.replayed) == ("fee", "0.6", "0.1")
    assert d.event.startswith("OrderFilled #13") and d.index == 3
    same = compare([(i, e) for i, e in enumerate(recorded)], Rerun(list(recorded), True, funded_book()))
    assert same.identical and same.recorded_fills == same.replayed_fills == 1


def test_compare_names_a_missing_replayed_event_and_ignores_random_ids_when_told():
    recorded = order_events(1, "BUY", "1", "100", "0.6", 1)
    other_ids = order_events(1, "BUY", "1", "100", "0.6", 1, key="a random order id")
    assert compare(list(enumerate(recorded)), Rerun(other_ids, False, funded_book())).identical
    assert compare(list(enumerate(recorded)), Rerun(other_ids, True, funded_book())).divergence.field == "originator_id"
    report = compare(list(enumerate(recorded)), Rerun(recorded[:2], True, funded_book()))
    assert report.divergence.field == "event" and report.divergence.replayed is None


def test_every_event_kind_reads_as_one_line_with_a_category():
    _, events = decision_events(1, "LONG")
    assert "LONG 25%" in describe(events[0]) and "LONG because" in describe(events[0])
    assert category_of("OrderFilled") == "fill" and category_of("TradingHalted") == "control"
    assert category_of("IncidentOpened") == "incident" and category_of("ConfigChanged") == "config"
    fill = order_events(1, "BUY", "1", "100", "0.6", 1)[-1]
    assert describe(fill).startswith("fill paper-x-1: 1 @ 100 fee 0.6")


def test_the_first_differing_risk_verdict_is_named_as_the_likely_cause():
    from application.replay.verify import first_verdict_difference

    def assessed(approved: bool, rule: str):
        d, _ = decision_events(1, "LONG")
        d.assess(meta(1, "risk"), approved=approved, rule=rule, requested_size_pct=Decimal(25),
                 approved_size_pct=Decimal(25) if approved else Decimal(0), message="m")
        return d.collect_events()

    same = assessed(True, "ok")
    assert first_verdict_difference(same, same) is None
    why = first_verdict_difference(assessed(True, "ok"), assessed(False, "max_daily_loss"))
    assert "max_daily_loss" in why and "'ok'" in why
