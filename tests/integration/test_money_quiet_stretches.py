"""The money ledger walks a quiet stretch at once (projections/ledger/quiet.py: a run's candles with their decisions, flat, in
one UTC day): every money table ends exactly as when each step is walked one by one, over runs with shorts,
breakers that halt, daily-loss refusals, fees, and a run over candles already in the log."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange
from application.trading.backtest import run_backtest
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from projections.ledger import quiet, walk

MONEY = ("positions", "pnl", "risk_usage")
RUNS = {  # run id -> (first candle, last candle, product, settings)
    1: (0, 1400, "BTC-USD", {}),
    2: (300, 1900, "ETH-USD", {"TRADING__ALLOW_SHORTS": "true"}),
    3: (200, 1800, "SOL-USD", {"RISK__RAPID_LOSS_PCT": "1", "RISK__MAX_CONSECUTIVE_LOSSES": "2",
                               "RISK__HALT_COOLDOWN_MINUTES": "300", "TRADING__ALLOW_SHORTS": "true"}),
    4: (100, 1500, "ADA-USD", {"RISK__MAX_DRAWDOWN_PCT": "3"}),
    5: (500, 2000, "XRP-USD", {"RISK__MAX_DAILY_LOSS_PCT": "0.5"}),
    6: (700, 1300, "BTC-USD", {}),  # BTC candles already in the log: its decisions name them
}


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    frame = read_candle_file(bundled_candles_path()).frame
    url = f"sqlite:///{tmp_path_factory.mktemp('quiet')}/events.db"
    app = open_store(url)
    try:
        for number, (first, last, product, env) in RUNS.items():
            settings = load_settings(env=env)
            run_backtest(
                app, frame.iloc[first:last], exchange=paper_exchange(settings, id_prefix=f"q{number}"),
                strategy=decision_model(settings),
                settings=loop_settings(settings, product=product, flush_every=250), initial_balance=D(10000),
                config_hash="quiet", code_version="quiet", run_id=uuid.UUID(int=number),
            )
    finally:
        app.close()
    return url


def money_digests(url: str, batch_size: int) -> dict:
    app = open_store(url)
    con = runner.open_readmodel(":memory:")
    try:
        chosen = runner.by_name(MONEY)
        runner.rebuild(app, con, chosen, batch_size)
        return runner.table_digests(con, chosen)
    finally:
        con.close()
        app.close()


@pytest.mark.parametrize("batch_size", [20_000, 2_777, 600])
def test_quiet_stretches_at_once_give_the_tables_of_the_step_by_step_walk(store_url, batch_size, monkeypatch):
    stretches = []

    def counted(ledger, book, steps):
        stretches.append(len(steps))
        return quiet.walk_quiet(ledger, book, steps)

    monkeypatch.setattr(walk, "walk_quiet", counted)
    at_once = money_digests(store_url, batch_size)
    assert len(stretches) > 20 and sum(stretches) > 3000  # the quiet path was taken, and for most steps
    monkeypatch.setattr(quiet, "QUIET_FROM", 10**9)
    stretches.clear()
    one_by_one = money_digests(store_url, batch_size)
    assert stretches == []
    assert at_once == one_by_one
    assert at_once["equity_curve"][1] > 7000 and at_once["position_history"][1] > 50 and at_once["risk_usage"][1] > 100


def test_each_money_projection_alone_walks_quiet_stretches_to_the_same_tables(store_url, monkeypatch):
    app = open_store(store_url)
    try:
        alone = {}
        for name in MONEY:
            con = runner.open_readmodel(":memory:")
            try:
                chosen = runner.by_name([name])
                runner.rebuild(app, con, chosen, 5000)
                alone.update(runner.table_digests(con, chosen))
            finally:
                con.close()
    finally:
        app.close()
    monkeypatch.setattr(quiet, "QUIET_FROM", 10**9)
    assert alone == money_digests(store_url, 5000)
