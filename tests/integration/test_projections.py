"""The DuckDB read model: the rows a known log produces, exactly-once positions, rebuild == catch-up."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from domain.control import Run
from domain.decision import Decision
from domain.events import EventMeta
from domain.market import Candle
from domain.order import Order
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from projections.tables.control import ConfigProjection, ControlProjection, RunsProjection
from projections.tables.decisions import DecisionsProjection
from projections.tables.market import CandlesProjection
from projections.tables.orders import OrdersProjection
from tests.support.recording import record

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
DECISION, FAILED = uuid.UUID(int=11), uuid.UUID(int=12)
FILLED, REJECTED, CANCELLED = uuid.UUID(int=21), uuid.UUID(int=22), uuid.UUID(int=23)
INCIDENT = uuid.UUID(int=31)
MINE = (CandlesProjection(), DecisionsProjection(), OrdersProjection(), ConfigProjection(), ControlProjection(), RunsProjection())
D = Decimal


def at(hours: int, actor: str = "system", run: uuid.UUID | None = RUN) -> EventMeta:
    return EventMeta(T0 + timedelta(hours=hours), actor, run_id=run, correlation_id=run)


def candle(hour: int, close: str) -> Candle:
    return Candle("BTC-USD", "1h", T0 + timedelta(hours=hour), D("100"), D("110"), D("90"), D(close), D("2.5"))


def write_known_log(app) -> None:
    """Every kind of event, with values the assertions below name, written as production writes them."""
    record(app, Run.begin(RUN, at(0), mode="backtest", product="BTC-USD", granularity="1h", strategy="llm",
                          config_hash="c0", code_version="1.2.3", initial_balance=D("10000")))
    app.record_candles([candle(0, "105"), candle(1, "101.5")], at(0, "market"))
    app.record_candles([candle(1, "102.25")], at(2, "market"), on_conflict="correct")
    decision = Decision.make(DECISION, at(1, "strategy:llm"), strategy="llm", model="gpt-x", prompt_hash="ph1",
                             product="BTC-USD", candle_start=T0, inputs={"rsi": 31.5}, action="LONG", size_pct=D("25"),
                             take_profit_pct=D("4"), stop_loss_pct=D("2"), rationale="oversold", latency_ms=D("850"),
                             prompt_tokens=1200, completion_tokens=80, cost=D("0.0123"), cached=False)
    decision.assess(at(1, "risk"), approved=True, rule="ok", requested_size_pct=D("25"),
                    approved_size_pct=D("20"), message="trimmed", numbers={"equity": D("10000")})
    record(app, decision)
    record(app, Decision.fail(FAILED, at(2, "strategy:llm"), strategy="llm", model="gpt-x", product="BTC-USD",
                              candle_start=T0 + timedelta(hours=1), kind="timeout", detail="no answer in 30s",
                              latency_ms=D("30000")))
    filled = Order.place(FILLED, at(1), product="BTC-USD", side="BUY", order_type="MARKET", quantity=D("0.3"),
                         stop_loss_price=D("98"), take_profit_price=D("109"), decision_id=DECISION)
    filled.submit(at(1))
    filled.accept(at(1, "exchange"), "venue-1")
    filled.fill(at(1, "exchange"), fill_id="f1", quantity=D("0.1"), price=D("100"), fee=D("0.06"),
                fee_currency="USD", liquidity="TAKER")
    record(app, filled)
    filled.fill(at(2, "exchange"), fill_id="f2", quantity=D("0.2"), price=D("101.5"), fee=D("0.12"),
                fee_currency="USD", liquidity="MAKER")
    rejected = Order.place(REJECTED, at(2), product="BTC-USD", side="SELL", order_type="LIMIT", quantity=D("1"),
                           limit_price=D("120"))
    rejected.reject(at(2, "exchange"), "insufficient funds")
    record(app, filled, rejected)
    cancelled = Order.place(CANCELLED, at(3), product="BTC-USD", side="BUY", order_type="LIMIT", quantity=D("1"),
                            limit_price=D("80"))
    cancelled.cancel(at(3, "operator:ann"), "stale")
    record(app, cancelled)
    ops = EventMeta(T0 + timedelta(hours=4), "operator:ann")
    app.set_config_baseline({"risk.max_daily_loss_pct": "5", "llm.api_key": "set:ab12", "trading.product": "BTC-USD"},
                            "h1", ops, reason="approved")
    app.change_config("risk.max_daily_loss_pct", "8", "more room", "h2", ops)
    app.change_config("llm.api_key", "set:cd34", "rotated", "h3", ops)
    app.change_config("trading.product", "ETH-USD", "try", "h4", ops)
    app.change_config("trading.product", "BTC-USD", "back", "h5", ops)
    app.operator_halt("drawdown", "P1", ops)
    app.resume_trading("checked", ops)
    app.open_incident(INCIDENT, ops, severity="P2", kind="venue", details="timeouts")
    app.resolve_incident(INCIDENT, "venue recovered", EventMeta(T0 + timedelta(hours=5), "operator:bob"))
    app.end_run(RUN, "completed", "end of data", at(6))


@pytest.fixture
def log(store_url):
    """The known log, on SQLite and on PostgreSQL (conftest's store_url)."""
    app = open_store(store_url)
    write_known_log(app)
    yield app
    app.close()


@pytest.fixture
def con(tmp_path):
    connection = runner.open_readmodel(tmp_path / "rm" / "readmodel.duckdb")
    yield connection
    connection.close()


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_every_table_holds_the_rows_of_the_known_log(log, con):
    read = runner.catch_up(log, con, MINE, 5000)
    assert read == len(list(log.iter_log()))  # PostgreSQL's ids may have gaps: count events, not ids
    assert set(runner.positions(con).values()) == {log.max_notification_id()}
    assert rows(con, "SELECT CAST(start AS VARCHAR), close, corrections FROM candles ORDER BY start") == [
        ("2024-01-01 00:00:00+00", D("105"), 0), ("2024-01-01 01:00:00+00", D("102.25"), 1)]
    assert rows(con, "SELECT decision_id, action, size_pct, failed, failure_kind, latency_ms, prompt_tokens, cost, "
                     "model, prompt_hash FROM decisions ORDER BY notification_id") == [
        (DECISION, "LONG", D("25"), False, None, D("850"), 1200, D("0.0123"), "gpt-x", "ph1"),
        (FAILED, "HOLD", D("0"), True, "timeout", D("30000"), 0, D("0"), "gpt-x", None)]
    assert rows(con, "SELECT decision_id, approved, rule, approved_size_pct, numbers->>'$.equity' FROM risk_assessments") == [
        (DECISION, True, "ok", D("20"), "10000")]
    assert rows(con, "SELECT run_id, strategy, model, calls, failures, latency_p50_ms, prompt_tokens, cost FROM llm_stats") == [
        (RUN, "llm", "gpt-x", 2, 1, D("850"), 1200, D("0.0123"))]
    assert rows(con, "SELECT order_id, status, filled_quantity, average_fill_price, fees, venue_order_id, reason "
                     "FROM orders ORDER BY placed_at, order_id") == [
        (FILLED, "FILLED", D("0.3"), D("101"), D("0.18"), "venue-1", None),
        (REJECTED, "REJECTED", D("0"), None, D("0"), None, "insufficient funds"),
        (CANCELLED, "CANCELLED", D("0"), None, D("0"), None, "stale")]
    assert rows(con, "SELECT fill_id, order_id, side, quantity, price, fee, liquidity FROM fills ORDER BY notification_id") == [
        ("f1", FILLED, "BUY", D("0.1"), D("100"), D("0.06"), "TAKER"),
        ("f2", FILLED, "BUY", D("0.2"), D("101.5"), D("0.12"), "MAKER")]
    assert rows(con, "SELECT kind, path, old_value, new_value FROM config_history ORDER BY notification_id, path") == [
        ("baseline", "llm.api_key", None, "set:ab12"), ("baseline", "risk.max_daily_loss_pct", None, "5"),
        ("baseline", "trading.product", None, "BTC-USD"), ("change", "risk.max_daily_loss_pct", "5", "8"),
        ("change", "llm.api_key", "set:ab12", "set:cd34"), ("change", "trading.product", "BTC-USD", "ETH-USD"),
        ("change", "trading.product", "ETH-USD", "BTC-USD")]
    assert rows(con, "SELECT path, baseline_value, current_value, actor FROM config_drift ORDER BY path") == [
        ("llm.api_key", "set:ab12", "set:cd34", "operator:ann"), ("risk.max_daily_loss_pct", "5", "8", "operator:ann")]
    assert rows(con, "SELECT action, reason, severity, actor FROM controls ORDER BY notification_id") == [
        ("halt", "drawdown", "P1", "operator:ann"), ("resume", "checked", None, "operator:ann")]
    assert rows(con, "SELECT incident_id, severity, status, note, resolved_by FROM incidents") == [
        (INCIDENT, "P2", "resolved", "venue recovered", "operator:bob")]
    assert rows(con, "SELECT run_id, mode, strategy, initial_balance, status, reason, CAST(ended_at AS VARCHAR) FROM runs") == [
        (RUN, "backtest", "llm", D("10000"), "completed", "end of data", "2024-01-01 06:00:00+00")]


def test_money_columns_are_decimal_38_18_never_double(log, con):
    runner.catch_up(log, con, MINE, 5000)
    types = dict(rows(con, "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = 'main'"))
    for column in ("candles.close", "candles.volume", "decisions.cost", "decisions.size_pct", "orders.quantity",
                   "orders.average_fill_price", "orders.fees", "fills.price", "fills.fee", "runs.initial_balance",
                   "risk_assessments.approved_size_pct", "llm_stats.cost", "llm_stats.latency_p95_ms"):
        assert types[column] == "DECIMAL(38,18)", column
    assert not [c for c, t in types.items() if t in ("DOUBLE", "FLOAT", "REAL")]


def test_catch_up_in_small_batches_while_the_log_grows_equals_a_rebuild(tmp_path, log, con):
    runner.catch_up(log, con, MINE, 2)
    log.record_candles([candle(2, "99")], at(7, "market"))
    log.record_candles([candle(2, "98")], at(8, "market"), on_conflict="correct")
    log.change_config("trading.product", "SOL-USD", "again", "h6", EventMeta(T0 + timedelta(hours=8), "operator:cy"))
    runner.catch_up(log, con, MINE, 3)
    assert set(runner.positions(con).values()) == {log.max_notification_id()}
    fresh = runner.open_readmodel(tmp_path / "fresh.duckdb")
    runner.rebuild(log, fresh, MINE, 5000)
    assert runner.checksums(con, MINE) == runner.checksums(fresh, MINE)
    assert rows(fresh, "SELECT close, corrections FROM candles WHERE start = '2024-01-01 02:00:00+00'") == [(D("98"), 1)]
    fresh.close()


def test_two_rebuilds_give_equal_checksums_and_catching_up_again_changes_nothing(log, con):
    runner.rebuild(log, con, MINE, 4)
    first = runner.table_digests(con, MINE)
    assert runner.catch_up(log, con, MINE, 4) == 0
    assert runner.table_digests(con, MINE) == first
    runner.rebuild(log, con, MINE, 1000)
    assert runner.table_digests(con, MINE) == first
    assert first["orders"][1] == 3 and first["candles"][1] == 2


def test_rebuilding_one_projection_by_name_leaves_the_others_alone(log, con):
    runner.catch_up(log, con, MINE, 5000)
    before = runner.checksums(con, MINE)
    con.execute("DELETE FROM fills")  # damage one projection's table
    runner.rebuild(log, con, MINE, 5000, names=["orders"])
    assert runner.checksums(con, MINE) == before
    with pytest.raises(runner.UnknownProjection, match="known: .*candles"):
        runner.rebuild(log, con, MINE, 5000, names=["nope"])


class Exploding(OrdersProjection):
    """The orders projection, failing after it has written part of a page."""

    def apply(self, con, after):
        super().apply(con, after)
        raise RuntimeError("disk full (simulated)")


def test_a_failure_inside_apply_keeps_nothing_of_that_page_and_the_position_stays(log, con):
    runner.catch_up(log, con, MINE, 10)  # everything applied once
    before = runner.table_digests(con, MINE)
    position = runner.positions(con)["orders"]
    record(log, Order.place(uuid.UUID(int=99), at(9), product="BTC-USD", side="BUY", order_type="MARKET", quantity=D("1")))
    with pytest.raises(runner.ProjectionFailed, match="orders.*stays at"):
        runner.catch_up(log, con, (MINE[0], Exploding()), 10)
    assert runner.positions(con)["orders"] == position
    assert runner.table_digests(con, MINE)["orders"] == before["orders"]
    assert runner.positions(con)["candles"] == log.max_notification_id()  # the others moved on
    runner.catch_up(log, con, MINE, 10)
    assert con.execute("SELECT count(*) FROM orders WHERE order_id = ?", [uuid.UUID(int=99)]).fetchall() == [(1,)]


def test_a_projection_added_later_starts_from_zero(log, con):
    runner.catch_up(log, con, MINE[:2], 5000)
    runner.catch_up(log, con, MINE, 7)
    assert rows(con, "SELECT count(*) FROM orders") == [(3,)]
    assert set(runner.positions(con).values()) == {log.max_notification_id()}


@pytest.fixture(scope="module")
def backtest_log(tmp_path_factory):
    """A month of the bundled candles through the real trading loop (about 1,700 events)."""
    frame = read_candle_file(bundled_candles_path()).frame.loc["2018-01-01":"2018-01-31"]
    settings = load_settings(env={})
    app = open_store(f"sqlite:///{tmp_path_factory.mktemp('bt')}/events.db")
    run_backtest(app, frame, exchange=paper_exchange(settings), strategy=decision_model(settings),
                 settings=loop_settings(settings, flush_every=100), initial_balance=D(10000), config_hash="t",
                 code_version="t", run_id=RUN)
    yield app
    app.close()


def test_a_backtest_projects_the_same_in_many_small_pages_as_in_one_rebuild(tmp_path, backtest_log):
    small = runner.open_readmodel(tmp_path / "small.duckdb")
    runner.catch_up(backtest_log, small, runner.ALL_PROJECTIONS, 97)
    whole = runner.open_readmodel(tmp_path / "whole.duckdb")
    runner.rebuild(backtest_log, whole, runner.ALL_PROJECTIONS, 5000)
    assert runner.checksums(small) == runner.checksums(whole)
    counts = {t: n for t, (_, n) in runner.table_digests(whole).items()}
    events = {e.event.event_type for e in backtest_log.iter_log()}
    assert "OrderFilled" in events and counts["fills"] == counts["orders"] > 0
    assert counts["candles"] == counts["decisions"] == 744 and counts["runs"] == 1
    assert rows(whole, "SELECT status FROM runs") == [("completed",)]
    small.close()
    whole.close()


def test_a_readmodel_file_owned_by_another_process_is_refused_by_name(tmp_path):
    path = tmp_path / "owned.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(runner.ReadModelLocked, match=f"{path}.*another tradecore process"):
            runner.open_readmodel(path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
