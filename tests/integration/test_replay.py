"""Replaying a recorded backtest day from a real SQLite log: timeline, state, verify, what-if."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange, risk_limits
from api.bootstrap import replay_exchange, scratch_store
from application.trading.backtest import run_backtest
from application.operations.controls import OperatorControls
from application.replay.timeline import ReplayError, build_timeline, load_day, state_at
from application.replay.verify import verify_day
from application.replay.whatif import what_if_day
from application.trading.loop import DeterministicIds
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.venues.paper.exchange import PaperExchange
from infrastructure.settings.loading import load_settings

RUN = uuid.UUID("00000000-0000-4000-8000-00000000a001")
HALT_DAY = date(2019, 1, 21)  # a trade, then an automatic halt (five losses in a row) and its resume
OPERATOR_AT = datetime(2019, 1, 10, 12, 30, tzinfo=timezone.utc)


class FixedClock:
    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.fixture(scope="module")
def frame():
    data = read_candle_file(bundled_candles_path()).frame
    return data[(data.index >= "2019-01-01") & (data.index < "2019-01-25")]


def record(url: str, frame, run_id=RUN, exchange=None):
    settings = load_settings(env={})
    app = open_store(url)
    summary = run_backtest(
        app, frame, exchange=exchange or paper_exchange(settings, id_prefix=f"paper-{run_id.hex[:8]}"),
        strategy=decision_model(settings), settings=loop_settings(settings, flush_every=250),
        initial_balance=Decimal(10000), config_hash="test", code_version="test", run_id=run_id,
    )
    return app, summary, settings


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("replay") / "events.db"
    app, summary, settings = record(f"sqlite:///{path}", frame)
    controls = OperatorControls(app, FixedClock(OPERATOR_AT), DeterministicIds(uuid.UUID(int=7)))
    incident = controls.open_incident("P0", "exchange_outage", "venue timeouts", actor="operator:alice")
    app.change_config("risk.max_daily_loss_pct", "2", "tighten during the outage", "h" * 64,
                      EventMeta(OPERATOR_AT, actor="operator:alice"))
    controls.resume("venue back", actor="operator:alice")
    controls.resolve_incident(incident.incident_id, "venue recovered", actor="operator:alice")
    yield app, summary, settings, path
    app.close()


def _digest(path: Path) -> str:
    files = [Path(path), Path(f"{path}-wal")]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists())).hexdigest()


def verify(app, day, settings, exchange_settings=None):
    log = load_day(app, day)
    limits = risk_limits(settings)
    store = scratch_store()
    try:
        exchange = replay_exchange(exchange_settings or settings, log)
        return verify_day(log, limits, loop_settings(settings, flush_every=10_000), exchange, store,
                          lambda: list(store.recorded))
    finally:
        store.close()


def what_if(app, day, settings, alt, **options):
    """The recorded day (measured with ``settings``' limits) beside its re-run with ``alt``, in a scratch store."""
    log = load_day(app, day)
    store = scratch_store()
    try:
        return what_if_day(log, risk_limits(settings), loop_settings(alt, flush_every=10_000), replay_exchange(alt, log),
                           store, lambda: list(store.recorded), **options)
    finally:
        store.close()


def test_timeline_shows_candles_decisions_verdicts_orders_fills_and_the_halt_in_log_order(recorded):
    app, _, settings, _ = recorded
    timeline = build_timeline(load_day(app, HALT_DAY), risk_limits(settings))
    types = [row.type for row in timeline.rows]
    assert types.count("CandleClosed") == 24 and types.count("DecisionMade") == 24
    for kind in ("RiskAssessed", "OrderPlaced", "OrderSubmitted", "OrderAccepted", "OrderFilled", "TradingHalted",
                 "TradingResumed"):
        assert kind in types, kind
    ids = [row.notification_id for row in timeline.rows]
    assert ids == sorted(ids)
    assert all(row.at.date() == HALT_DAY for row in timeline.rows)
    halt = next(row for row in timeline.rows if row.type == "TradingHalted")
    assert halt.state["halted"] is True and "consecutive_losses" in halt.state["halt_reason"]
    resumed = next(row for row in timeline.rows if row.type == "TradingResumed")
    assert resumed.state["halted"] is False and resumed.state["consecutive_losses"] == 0
    fill = next(row for row in timeline.rows if row.type == "OrderFilled")
    assert "fee" in fill.summary and fill.state["fees"] != timeline.start_state["fees"]


def test_state_at_the_end_of_the_run_equals_the_loops_own_account(recorded, frame):
    app, summary, settings, _ = recorded
    last_day = (frame.index[-1].to_pydatetime() + (frame.index[1] - frame.index[0])).date()
    timeline = build_timeline(load_day(app, last_day), risk_limits(settings))
    end = timeline.end_state
    cent = Decimal("0.01")
    assert Decimal(end["equity"]) == summary.final_equity.quantize(cent)
    assert Decimal(end["realized_pnl"]) == summary.realized_pnl.quantize(cent)
    assert Decimal(end["fees"]) == summary.fees.quantize(cent)
    assert end["trades"] == summary.trades


def test_state_at_an_instant_has_position_pnl_daily_loss_and_limit(recorded):
    app, _, settings, _ = recorded
    state = state_at(load_day(app, HALT_DAY), datetime(2019, 1, 21, 16, 30, tzinfo=timezone.utc), risk_limits(settings))
    assert state["halted"] is True and state["halted_by"] == "risk"
    assert state["daily_loss_limit_pct"] == "3" and Decimal(state["daily_loss_used_pct"]) > 0
    assert state["last_event"]["type"] == "DecisionMade"
    assert state["run"]["run_id"] == str(RUN)


def test_operator_controls_incidents_and_config_changes_show_in_the_timeline(recorded):
    app, _, settings, _ = recorded
    timeline = build_timeline(load_day(app, OPERATOR_AT.date()), risk_limits(settings))
    types = [row.type for row in timeline.rows]
    for kind in ("IncidentOpened", "TradingHalted", "CancelAllRequested", "ConfigChanged", "TradingResumed",
                 "IncidentResolved"):
        assert kind in types, kind
    changed = next(row for row in timeline.rows if row.type == "ConfigChanged")
    assert "risk.max_daily_loss_pct" in changed.summary and "operator:alice" in changed.summary
    opened = next(row for row in timeline.rows if row.type == "IncidentOpened")
    assert opened.state["open_incidents"] == 1
    assert timeline.end_state["open_incidents"] == 0
    # The operator's halt is on the shared control stream: it does not halt this backtest's own loop.
    assert timeline.end_state["trading_halted_globally"] is False


def test_verify_reexecutes_every_trading_day_identically(recorded):
    app, summary, settings, _ = recorded
    checked = 0
    for day in (date(2019, 1, d) for d in (3, 4, 6, 16, 21)):
        report = verify(app, day, settings)
        assert report.identical, (day, report.divergence)
        assert report.recorded_orders == report.replayed_orders > 0
        assert report.ids_compared
        checked += report.recorded_fills
    assert checked > 5


def test_verify_names_the_first_divergence_when_the_recorded_fees_were_not_the_configured_ones(tmp_path, frame):
    settings = load_settings(env={})
    run = uuid.UUID("00000000-0000-4000-8000-00000000a002")
    # The run traded with 10 bps taker fees while its configuration says 60: the log disagrees with a re-run.
    cheap = PaperExchange(taker_fee_bps=Decimal(10), maker_fee_bps=Decimal(40), slippage_bps=settings.paper.slippage_bps,
                          fill_volume_fraction=settings.paper.fill_volume_fraction, id_prefix=f"paper-{run.hex[:8]}")
    app, _, _ = record(f"sqlite:///{tmp_path}/tampered.db", frame, run, exchange=cheap)
    try:
        report = verify(app, date(2019, 1, 4), settings)
    finally:
        app.close()
    assert not report.identical
    d = report.divergence
    assert d.field == "fee" and d.event.startswith("OrderFilled #")
    assert Decimal(d.recorded) * 6 == pytest.approx(Decimal(d.replayed), rel=Decimal("0.001"))


def test_what_if_with_a_tighter_loss_streak_and_lower_fees_never_writes_the_real_log(recorded):
    app, _, settings, path = recorded
    before_id, before_hash = app.max_notification_id(), _digest(path)
    alt = load_settings(env={}, overrides={"risk.max_consecutive_losses": 10, "exchange.taker_fee_bps": 10})
    report = what_if(app, HALT_DAY, settings, alt)
    assert report.recorded.halts == 1 and report.what_if.halts == 0
    assert report.what_if.fees < report.recorded.fees
    assert report.recorded.orders == report.what_if.orders
    assert app.max_notification_id() == before_id
    assert _digest(path) == before_hash


def test_what_if_with_a_tighter_daily_loss_limit_names_the_first_decision_that_differed(recorded):
    app, _, settings, _ = recorded
    alt = load_settings(env={}, overrides={"risk.max_daily_loss_pct": "0.01"})
    report = what_if(app, date(2019, 1, 4), settings, alt)
    if report.recorded.orders == report.what_if.orders:
        pytest.fail(f"a 0.01% daily loss limit changed nothing on 2019-01-04: {report}")
    first = report.first_difference
    assert first is not None and "refused by max_daily_loss" in first["what_if"], first
    assert "approved" in first["recorded"]


def test_a_day_with_two_runs_needs_run_and_a_second_run_over_the_same_candles_verifies(recorded, tmp_path, frame):
    _, _, settings, path = recorded
    copy = tmp_path / "two.db"
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # the log may still sit in the WAL: copy through SQLite, not the file
    second = uuid.UUID("00000000-0000-4000-8000-00000000a003")
    app, _, _ = record(f"sqlite:///{copy}", frame.iloc[:120], second)  # its candles are already in the log
    try:
        with pytest.raises(ReplayError, match="pass --run"):
            load_day(app, date(2019, 1, 3))
        log = load_day(app, date(2019, 1, 3), run_id=second)
        assert log.run.run_id == second
        assert not any(le.event.run_id == second and type(le.event).__name__ == "CandleClosed" for le in log.events)
        limits = risk_limits(settings)
        store = scratch_store()
        exchange = replay_exchange(settings, log)
        report = verify_day(log, limits, loop_settings(settings, flush_every=10_000), exchange, store,
                            lambda: list(store.recorded))
        store.close()
        assert report.identical, report.divergence
    finally:
        app.close()


def test_what_if_with_another_strategy_decides_afresh_on_warmed_up_indicators(recorded):
    from application.trading.backtest import IncrementalIndicators
    from application.replay.rerun import WarmIndicators
    from domain.strategy_rules import RulesStrategy

    app, _, settings, _ = recorded
    log = load_day(app, date(2019, 1, 4))
    limits = risk_limits(settings)
    store = scratch_store()
    try:
        report = what_if_day(log, limits, loop_settings(settings, flush_every=10_000),
                             replay_exchange(settings, log), store,
                             lambda: list(store.recorded), strategy=RulesStrategy(size_pct=10.0),
                             indicators=lambda history: WarmIndicators(IncrementalIndicators().state, history))
        decisions = [e for e in store.recorded if type(e).__name__ == "DecisionMade"]
    finally:
        store.close()
    assert len(decisions) == 24 and not any("warming up" in d.rationale for d in decisions)
    # The same signals as the recorded rules run (the indicators were warmed up on the days before) ...
    recorded_actions = [e.action for e in log.run_day_events() if type(e).__name__ == "DecisionMade"]
    assert [d.action for d in decisions] == recorded_actions
    # ... at a smaller size: the first LONG differs in its size and orders.
    first = report.first_difference
    assert first is not None and "LONG" in first["what_if"] and "10.0%" in first["what_if"], first


def test_the_page_is_self_contained_with_candles_markers_and_rationales(recorded):
    from api.pages.replay import render_page

    app, _, settings, _ = recorded
    page = render_page(build_timeline(load_day(app, HALT_DAY), risk_limits(settings)), "config note")
    assert page.count('<g class="candle ') == 24
    assert 'class="marker decision"' in page and 'class="marker fill"' in page and 'class="marker control"' in page
    assert "rationale: long exit" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page and "<link" not in page


def test_replay_and_verify_work_on_each_store_backend(store_url, frame):
    app, _, settings = record(store_url, frame.iloc[:5 * 24], uuid.UUID("00000000-0000-4000-8000-00000000a004"))
    try:
        log = load_day(app, date(2019, 1, 4))
        timeline = build_timeline(log, risk_limits(settings))
        assert [r.type for r in timeline.rows].count("DecisionMade") == 24
        report = verify(app, date(2019, 1, 4), settings)
        assert report.identical and report.recorded_fills > 0, report.divergence
    finally:
        app.close()


def test_the_runs_first_day_starts_from_its_opening_deposit(recorded):
    app, _, settings, _ = recorded
    first_day = date(2019, 1, 1)  # RunStarted and the 10,000 deposit are events of this day
    log = load_day(app, first_day)
    limits = risk_limits(settings)
    assert verify(app, first_day, settings).identical
    store = scratch_store()
    try:
        report = what_if_day(log, limits, loop_settings(settings, flush_every=10_000), replay_exchange(settings, log),
                             store, lambda: list(store.recorded))
    finally:
        store.close()
    end = build_timeline(log, limits).end_state
    assert report.recorded.end_equity == report.what_if.end_equity == Decimal(end["equity"])
    assert Decimal(9000) < Decimal(end["equity"]) < Decimal(11000)
