"""The event-sourced backtest over real Coinbase candles: accounting, determinism, one loop."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from api.bootstrap import open_store, paper_exchange, loop_settings, decision_model
from application.trading.backtest import IncrementalIndicators, run_backtest, candles_of
from application.trading.loop import DeterministicIds, TradingLoop
from domain.accounting import Portfolio
from domain.control import RunMode
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.eventstore.chain import verify_chain
from infrastructure.settings.loading import load_settings

RUN = uuid.UUID("00000000-0000-4000-8000-000000000042")


@pytest.fixture(scope="module")
def history():
    frame = read_candle_file(bundled_candles_path()).frame
    return frame.iloc[:3000]  # 2017-07 .. 2017-11: trades, stops, halts


def backtest(url, frame, run_id=RUN, settings=None):
    settings = settings or load_settings(env={})
    app = open_store(url)
    summary = run_backtest(
        app, frame, exchange=paper_exchange(settings, id_prefix="paper"), strategy=decision_model(settings),
        settings=loop_settings(settings, flush_every=250), initial_balance=Decimal(10000), config_hash="test",
        code_version="test", run_id=run_id,
    )
    return app, summary


def test_accounting_from_fill_events_alone_matches_the_engine_to_the_cent(tmp_path, history):
    app, summary = backtest(f"sqlite:///{tmp_path}/bt.db", history)
    events = [e.event for e in app.iter_log()]
    placed = {e.originator_id: e for e in events if e.event_type == "OrderPlaced"}
    fills = [e for e in events if e.event_type in ("OrderFilled", "OrderPartiallyFilled")]
    assert len(fills) == summary.fills > 10
    # An independent recomputation: cash and average-cost P&L from fills only.
    cash, qty, cost, realized, fees = Decimal(10000), Decimal(0), Decimal(0), Decimal(0), Decimal(0)
    for fill in fills:
        side = placed[fill.originator_id].side.value
        fees += fill.fee
        if side == "BUY":
            cash -= fill.quantity * fill.price + fill.fee
            qty += fill.quantity
            cost += fill.quantity * fill.price
        else:
            cash += fill.quantity * fill.price - fill.fee
            avg = cost / qty
            realized += (fill.price - avg) * fill.quantity
            cost -= avg * fill.quantity
            qty -= fill.quantity
            if qty == 0:
                cost = Decimal(0)
    assert fees == summary.fees
    assert realized.quantize(Decimal("0.01")) == summary.realized_pnl.quantize(Decimal("0.01"))
    last_close = history["close"].iloc[-1]
    assert (cash + qty * last_close).quantize(Decimal("0.01")) == summary.final_equity.quantize(Decimal("0.01"))
    deposits = [e for e in events if e.event_type == "FundsDeposited"]
    assert [d.amount for d in deposits] == [Decimal(10000)]
    app.close()


def test_every_candle_decision_verdict_order_and_fill_is_an_event(tmp_path, history):
    app, summary = backtest(f"sqlite:///{tmp_path}/bt.db", history)
    types = [e.event.event_type for e in app.iter_log()]
    assert types[0] == "RunStarted" and types[-1] == "RunEnded"
    assert types.count("CandleClosed") == len(history) == summary.candles
    assert types.count("DecisionMade") + types.count("DecisionFailed") == len(history)
    assert types.count("OrderPlaced") == summary.orders
    events = [e.event for e in app.iter_log()]
    verdicts = {e.event_id: e for e in events if e.event_type == "RiskAssessed"}
    entries_or_closes = [e for e in events if e.event_type == "OrderPlaced" and e.causation_id is not None]
    exits = [e for e in events if e.event_type == "OrderPlaced" and e.causation_id is None]
    assert entries_or_closes and all(verdicts[o.causation_id].approved for o in entries_or_closes)
    # Stop-loss / take-profit exits carry the decision of the entry they close.
    entry_decisions = {o.decision_id for o in entries_or_closes}
    assert exits and all(o.decision_id in entry_decisions for o in exits)
    assert verify_chain(app.recorder).ok
    # Log order follows time: each decision comes right after its candle.
    first_decision = types.index("DecisionMade")
    assert types[first_decision - 1] == "CandleClosed"
    app.close()


def test_same_candles_same_run_id_give_identical_events(tmp_path, history):
    a, _ = backtest(f"sqlite:///{tmp_path}/a.db", history.iloc[:1500])
    b, _ = backtest(f"sqlite:///{tmp_path}/b.db", history.iloc[:1500])
    dump = lambda app: [(e.topic, e.event.model_dump()) for e in app.iter_log()]  # noqa: E731
    assert dump(a) == dump(b)
    assert verify_chain(a.recorder).head == verify_chain(b.recorder).head
    a.close(), b.close()


def test_second_backtest_over_the_same_candles_does_not_duplicate_them(tmp_path, history):
    url = f"sqlite:///{tmp_path}/bt.db"
    app, _ = backtest(url, history.iloc[:600])
    app.close()
    again, summary = backtest(url, history.iloc[:600], run_id=uuid.uuid4())
    types = [e.event.event_type for e in again.iter_log()]
    assert types.count("CandleClosed") == 600
    assert types.count("RunStarted") == 2 and summary.candles == 600
    again.close()


def test_incremental_indicators_drive_the_same_decisions_as_the_batch(tmp_path, history):
    frame = history.iloc[:1200]
    settings = load_settings(env={})
    batch_app, _ = backtest(f"sqlite:///{tmp_path}/batch.db", frame)
    live_app = open_store(f"sqlite:///{tmp_path}/live.db")
    loop = TradingLoop(live_app, paper_exchange(settings, id_prefix="paper"), decision_model(settings),
                       IncrementalIndicators(), loop_settings(settings, flush_every=250), RUN, DeterministicIds(RUN),
                       RunMode.BACKTEST)
    candles = candles_of(frame, "BTC-USD", "1h")
    loop.start(candles[0].start, Decimal(10000), "test", "test", candles[0].start, candles[-1].end)
    for candle in candles:
        loop.step(candle)
    loop.finish(candles[-1].end)
    pick = lambda app: [(e.event.event_type, e.event.payload()) for e in app.iter_log()  # noqa: E731
                        if e.event.event_type in ("DecisionMade", "OrderFilled", "RiskAssessed")]
    batch, live = pick(batch_app), pick(live_app)
    assert [t for t, _ in batch] == [t for t, _ in live]
    for (_, b), (_, l) in zip(batch, live):
        if "inputs" in b:
            for key, value in b["inputs"].items():
                other = l["inputs"][key]
                if isinstance(value, float):
                    assert other == pytest.approx(value, rel=1e-9, abs=1e-9), key
                else:
                    assert other == value, key
            b, l = {k: v for k, v in b.items() if k != "inputs"}, {k: v for k, v in l.items() if k != "inputs"}
        assert b == l
    batch_app.close(), live_app.close()


def test_portfolio_replayed_from_fills_equals_engine_portfolio(tmp_path, history):
    app, summary = backtest(f"sqlite:///{tmp_path}/bt.db", history)
    portfolio = Portfolio(Decimal(10000))
    placed = {}
    for logged in app.iter_log():
        e = logged.event
        if e.event_type == "OrderPlaced":
            placed[e.originator_id] = e.side
        elif e.event_type in ("OrderFilled", "OrderPartiallyFilled"):
            portfolio.apply_fill("BTC-USD", placed[e.originator_id], e.quantity, e.price, e.fee)
    assert portfolio.realized_pnl == summary.realized_pnl
    assert portfolio.fees_paid == summary.fees
    assert portfolio.trades == summary.trades and portfolio.wins == summary.wins
    app.close()


def test_backtest_halts_stay_on_the_runs_own_control_stream(tmp_path, history):
    url = f"sqlite:///{tmp_path}/bt.db"
    app, summary = backtest(url, history)
    assert summary.halts > 0
    assert app.get_trading_control() is None  # live/paper trading was never halted by the backtest
    app.close()


def test_operator_halt_of_live_trading_does_not_stop_a_backtest(tmp_path, history):
    from domain.events import EventMeta
    from tests.conftest import T0

    url = f"sqlite:///{tmp_path}/bt.db"
    app = open_store(url)
    app.operator_halt("exchange maintenance", "P1", EventMeta(T0, actor="operator:alice"))
    app.close()
    again, summary = backtest(url, history.iloc[:800])
    assert summary.orders > 0
    assert again.get_trading_control().halted
    again.close()
