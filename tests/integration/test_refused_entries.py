"""Entries refused while halted recorded as column batches (domain/refused_entries.py): each DecisionMade and the
RiskAssessed refusing it stored exactly as the one-event path stores them, in the same order, and a batch with
one bad value anywhere refused whole, naming the field and the value, with nothing of it written."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal as D

import pytest

from domain.decision import Decision, RiskAssessed, StrategyDecision, TradeAction, TradeActionKind
from domain.events import EventMeta, EventValidationError, FieldProblem
from domain.refused_entries import EntryDecisions, RiskRefusals
from domain.risk_terms import RiskVerdict
from domain.strategy_rules import INPUT_NAMES
from tests.integration.test_hold_decisions import RUN, T0, WEIRD_FLOATS, batch, run_started, store  # noqa: F401

LONG = TradeAction(action=TradeActionKind.LONG, size_pct=25.0, take_profit_pct=4.0, stop_loss_pct=2.0, rationale="")
SHORT = TradeAction(action=TradeActionKind.SHORT, size_pct=10.0, take_profit_pct=None, stop_loss_pct=-0.0, rationale="")
NUMBERS = {"equity": D("8015.1131745569"), "cash": D("8015.1131745569"), "day_start_equity": D("8154.0787623417"),
           "daily_loss_pct": D("1.704246"), "position_quantity": D("0E-8"), "consecutive_losses": D(3)}
HALTED = RiskVerdict(False, "halted", D("25.0"), D(0), "LONG refused: trading is halted until resumed", NUMBERS)
COOLDOWN = RiskVerdict(False, "halt_cooldown", D("10.0"), D(0), "SHORT refused: halted 7 minutes ago; cooldown is 60",
                       {**NUMBERS, "minutes_since_halt": D("7.0")})


def refused_entries(count: int = 60) -> tuple[list, list]:
    """``count`` refused entries as the loop's fast path records them (pairs of one-row batches), and the same
    decisions made and assessed one event at a time, as ``TradingLoop.decide`` does."""
    inputs = {name: ([k % 3 == 0 for k in range(count)] if name not in ("wt1", "wt2", "rsi")
                     else [WEIRD_FLOATS[k % len(WEIRD_FLOATS)] for k in range(count)]) for name in INPUT_NAMES}
    batches, events = [], []
    for k in range(count):
        terms, verdict = (LONG, HALTED) if k % 4 else (SHORT, COOLDOWN)
        action = terms.model_copy(update={"rationale": f'buy signal: WT cross up oversold (wt1={k:.1f}, "é")'})
        decision_id = (RUN.int + 104729 * (k + 1)) % (1 << 128)
        at, start = T0 + timedelta(hours=k + 1), T0 + timedelta(hours=k)
        quantity = "0E-8" if k % 2 else "0"
        entry = EntryDecisions(RUN, "rules", "BTC-USD", inputs, action)
        entry.add(decision_id, at, start, k, quantity, action.rationale)
        refusal = RiskRefusals(RUN, verdict)
        refusal.add(decision_id, at)
        batches += [entry, refusal]
        made = {name: inputs[name][k] for name in INPUT_NAMES} | {"position_quantity": quantity}
        oid = uuid.UUID(int=decision_id)
        decision = Decision.of(oid, EventMeta(at, "strategy:rules", oid, None, RUN),
                               StrategyDecision(action=action, strategy="rules", inputs=made), "BTC-USD", start, made)
        decision.assess(EventMeta(at, "risk", oid, None, RUN), **verdict.event_fields())
        events += decision.collect_events()
    return batches, events


def test_refused_entries_are_stored_as_the_one_event_path_stores_them(store, tmp_path):  # noqa: F811
    from api.bootstrap import open_store

    batches, events = refused_entries()
    holds, tail = batch(30), batch(5)
    tail.ids = [n + 1 for n in tail.ids]  # streams of their own
    one_by_one = open_store(f"sqlite:///{tmp_path}/reference.db")
    try:
        store.record_in_order([*run_started(), holds, *batches[:40], tail, *batches[40:]])
        one_by_one.record_in_order([*run_started(), *holds.events(), *events[:40], *tail.events(), *events[40:]])
        rows = store.recorder.select_log_rows(0, 1000)
        assert len(rows) == 1 + 30 + 120 + 5
        assert rows == one_by_one.recorder.select_log_rows(0, 1000)  # the same bytes, in the same order
        assert store._stored_rows.fallbacks == 0
        assert [e.event for e in store.iter_log()][31:71] == events[:40]
        refusals = [e.event for e in store.iter_log(topics=["domain.decision:RiskAssessed"])]
        assert [r.originator_version for r in refusals] == [2] * 60 and {r.rule for r in refusals} == {"halted", "halt_cooldown"}
    finally:
        one_by_one.close()


@pytest.mark.parametrize("kind, field, row, bad, named", [
    (EntryDecisions, "candle_start", 17, datetime(2021, 3, 10), "candle_start"),
    (EntryDecisions, "rationale", 0, "x" * 201, "rationale"),
    (EntryDecisions, "ids", 5, 1 << 128, "originator_id"),
    (RiskRefusals, "occurred_at", 29, datetime(2021, 3, 10), "occurred_at"),
    (RiskRefusals, "occurred_at", 3, "not a time", "occurred_at"),
    (RiskRefusals, "ids", 11, -1, "originator_id"),
])
def test_one_bad_value_anywhere_refuses_the_whole_batch_naming_field_and_value(store, kind, field, row, bad, named):  # noqa: F811
    batches, _ = refused_entries()
    # the bad value in the ``row``-th batch of its kind: merged with the others of its kind before it is encoded
    target = [b for b in batches if type(b) is kind][row]
    getattr(target, field)[0] = bad
    before = store.max_notification_id()
    with pytest.raises(EventValidationError) as refused:
        store.record_in_order([*run_started(), *batches])
    (problem,) = refused.value.problems
    assert problem[1] == bad
    assert problem[0].startswith(f"{named} (row ") and named in str(refused.value)  # the row within its merged batch
    assert store.max_notification_id() == before  # nothing of the batches, nor what came with them


def test_a_batch_holds_refused_entries_only():
    inputs = {name: [None] for name in INPUT_NAMES}
    with pytest.raises(FieldProblem):
        EntryDecisions(RUN, "rules", "BTC-USD", inputs, LONG.model_copy(update={"action": TradeActionKind.HOLD}))
    with pytest.raises(FieldProblem):
        RiskRefusals(RUN, RiskVerdict(True, "ok", D(25), D(25), "LONG approved", {}))
    with pytest.raises(FieldProblem):  # more approved than requested: Decision.assess refuses it too
        RiskRefusals(RUN, RiskVerdict(False, "halted", D(10), D(20), "refused", {}))


def test_verdicts_written_differently_get_templates_of_their_own(store):  # noqa: F811
    # 25 and 25.0 are equal Decimals but JSON "25" and "25.0": each verdict's rows carry its own text
    batches = []
    for k, requested in enumerate((D("25.0"), D(25), D("25.0"))):
        refusal = RiskRefusals(RUN, RiskVerdict(False, "halted", requested, D(0), "LONG refused", {"equity": requested}))
        refusal.add(RUN.int + k + 1, T0 + timedelta(hours=k))
        batches.append(refusal)
    entries = []
    for k, size in enumerate((10.0, 10.0, 0.0, -0.0)):
        entry = EntryDecisions(RUN, "rules", "BTC-USD", {name: [None] for name in INPUT_NAMES},
                               LONG.model_copy(update={"take_profit_pct": size}))
        entry.add(RUN.int + 100 + k, T0, T0, 0, "0", "r")
        entries.append(entry)
    rows = store._stored_rows_for(type(store.mapper).to_row).rows_in_order([*batches, *entries])
    assert rows == [type(store.mapper).to_row(e) for b in [*batches, *entries] for e in b.events()]
    assert [row[1] for row in rows] == [2, 2, 2, 1, 1, 1, 1]
    assert store._stored_rows.fallbacks == 0
    assert [e for e in batches[1].events()][0] == RiskAssessed.build(
        uuid.UUID(int=RUN.int + 2), 2, EventMeta(T0 + timedelta(hours=1), "risk", uuid.UUID(int=RUN.int + 2), None, RUN),
        approved=False, rule="halted", requested_size_pct=D(25), approved_size_pct=D(0), message="LONG refused",
        numbers={"equity": D(25)})
