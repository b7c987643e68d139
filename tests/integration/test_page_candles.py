"""A page's candles are parsed once (projections/engine/page_candles.py) for the candles projection and the money
ledger: the tables hold what each made of its own parse, whatever the positions the projections apply a page from."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from api.bootstrap import open_store
from domain.control import Run
from domain.decision import Decision
from domain.events import EventMeta
from domain.market import Candle
from projections.engine import runner
from tests.support.recording import record

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
RUN = uuid.UUID("00000000-0000-4000-8000-0000000000c1")
D = Decimal
LONG_CLOSE = "101.12345678901234567891"  # more than 18 decimals: the candles table rounds, the marks keep the text


def at(hours: int, run: uuid.UUID | None = RUN) -> EventMeta:
    return EventMeta(T0 + timedelta(hours=hours), "market", run_id=run, correlation_id=run)


def candle(hour: int, close: str, product: str = "ETH-USD") -> Candle:
    return Candle(product, "1h", T0 + timedelta(hours=hour), D("100"), D("110"), D("90"), D(close), D("3"))


@pytest.fixture
def log(tmp_path):
    """One run's 1,200 candles, a candle of another product without a run, two corrections of one candle
    (the last wins) and one close of 21 decimals, all in one page of 5,000 (the SQL path of the money ledger)."""
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    record(app, Run.begin(RUN, at(0), mode="backtest", product="ETH-USD", granularity="1h", strategy="rules",
                          config_hash="c", code_version="1", initial_balance=D("1000")))
    app.record_candles([candle(h, str(100 + h % 7)) for h in range(1200)], at(1))
    app.record_candles([candle(5, "91.5", product="SOL-USD")], at(2, run=None))
    app.record_candles([candle(3, "99.25")], at(3), on_conflict="correct")
    app.record_candles([candle(3, "98.75")], at(4), on_conflict="correct")
    app.record_candles([candle(1300, LONG_CLOSE)], at(1301))
    for k, hour in enumerate((10, 11, 1300)):  # decisions naming candles of earlier pages (parsed once: page_decisions)
        record(app, Decision.make(uuid.UUID(int=500 + k), at(hour + 1), strategy="llm", model=None, prompt_hash=None,
                                  product="ETH-USD", candle_start=T0 + timedelta(hours=hour), inputs={"rsi": 40},
                                  action="HOLD", size_pct=D("0"), take_profit_pct=None, stop_loss_pct=None,
                                  rationale="", latency_ms=D("12.5"), prompt_tokens=None, completion_tokens=None,
                                  cost=None, cached=k == 1))
    yield app
    app.close()


def test_candles_and_money_marks_hold_the_page_as_parsed_once(log, tmp_path):
    con = runner.open_readmodel(tmp_path / "rm.duckdb")
    runner.rebuild(log, con, batch_size=5000)
    start = T0 + timedelta(hours=3)
    assert con.execute("SELECT close, corrections FROM candles WHERE product = 'ETH-USD' AND start = ?",
                       [start]).fetchall() == [(D("98.75"), 2)]
    assert con.execute("SELECT close FROM candles WHERE start = ?", [T0 + timedelta(hours=1300)]).fetchall() == [
        (D("101.123456789012345679"),)]
    assert con.execute("SELECT count(*) FROM candles").fetchall() == [(1202,)]
    for name in ("positions", "pnl", "risk_usage"):
        marks = dict(((p, s), c) for p, s, c in con.execute(
            f"SELECT product, start_us, close FROM {name}__marks").fetchall())
        assert len(marks) == 1202
        assert marks[("ETH-USD", int(start.timestamp() * 1_000_000))] == "98.75"
        assert marks[("ETH-USD", int((T0 + timedelta(hours=1300)).timestamp() * 1_000_000))] == LONG_CLOSE
        assert marks[("SOL-USD", int((T0 + timedelta(hours=5)).timestamp() * 1_000_000))] == "91.5"
    curve = con.execute("SELECT close FROM equity_curve WHERE candle_start = ?", [start]).fetchall()
    assert curve == [(D("103"),)]  # the step's close as the run's candle closed (a later correction changes marks)
    con.close()


def test_projections_at_different_positions_in_one_page_equal_a_rebuild(log, tmp_path):
    whole = runner.open_readmodel(tmp_path / "whole.duckdb")
    runner.rebuild(log, whole, batch_size=5000)
    parts = runner.open_readmodel(tmp_path / "parts.duckdb")
    money = runner.by_name(["positions", "pnl", "risk_usage"])
    for chosen, batch in ((runner.by_name(["candles"]), 700), (money, 1100)):  # one page each
        stop = threading.Event()
        runner.catch_up(log, parts, chosen, batch_size=batch, on_page=lambda _: stop.set(), stop=stop)
    assert runner.positions(parts) == {"candles": 700, "positions": 1100, "pnl": 1100, "risk_usage": 1100}
    runner.catch_up(log, parts, batch_size=5000)  # candles, money and the others each from a position of its own
    assert runner.checksums(parts) == runner.checksums(whole)
    assert whole.execute("SELECT count(*), count(cost), sum(CAST(cached AS INT)), min(latency_ms) FROM decisions"
                         ).fetchall() == [(3, 0, 1, D("12.5"))]
    assert runner.positions(parts) == runner.positions(whole)
    whole.close()
    parts.close()


def test_a_page_of_candles_that_are_no_runs_moves_only_the_marks_and_a_later_decision_finds_them(tmp_path):
    """1,100 imported candles (no run) fill the first page of 1,050 alone: the walk has nothing to do there (no
    step, no decision), yet a run's decision on a later page names one of them and books its step at that close."""
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        app.record_candles([candle(h, str(100 + h % 5)) for h in range(1100)], at(0, run=None))
        record(app, Run.begin(RUN, at(2000), mode="backtest", product="ETH-USD", granularity="1h", strategy="rules",
                              config_hash="c", code_version="1", initial_balance=D("1000")))
        record(app, Decision.make(uuid.UUID(int=900), at(1061), strategy="rules", model=None, prompt_hash=None,
                                  product="ETH-USD", candle_start=T0 + timedelta(hours=1060), inputs={},
                                  action="HOLD", size_pct=D("0"), take_profit_pct=None, stop_loss_pct=None,
                                  rationale="", latency_ms=D("1"), prompt_tokens=None, completion_tokens=None,
                                  cost=None, cached=False))
        paged = runner.open_readmodel(tmp_path / "paged.duckdb")
        runner.rebuild(app, paged, batch_size=1050)
        whole = runner.open_readmodel(tmp_path / "whole.duckdb")
        runner.rebuild(app, whole, batch_size=5000)
        assert runner.checksums(paged) == runner.checksums(whole)
        assert paged.execute("SELECT count(*) FROM pnl__marks").fetchall() == [(1100,)]
        assert paged.execute("SELECT close FROM equity_curve").fetchall() == [(D("100"),)]  # hour 1060: 100 + 0
        paged.close()
        whole.close()
    finally:
        app.close()
