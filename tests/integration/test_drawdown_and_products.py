"""The drawdown breaker and products with their own grids, through the real loop, paper exchange and store.

Candles are made here in shapes the bundled data lacks: a steady fall, a sub-cent product (0.0016) on
1-minute bars, a BTC-quoted pair. A scripted strategy (the DecisionModel port) always wants to be long.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pytest

from fastapi.testclient import TestClient

from api.bootstrap import loop_settings, open_store, paper_exchange
from api.http import create_app
from api.http.readmodel import ReadModelAccess
from application.replay.timeline import load_day, state_at
from projections.engine import runner
from projections.reading.reports import daily_report
from application.trading.backtest import run_backtest
from domain.decision import StrategyDecision, TradeAction, TradeActionKind
from domain.product import ProductSpec
from domain.risk import drawdown_breach
from domain.risk_terms import RiskLimits
from infrastructure.settings.loading import load_settings

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


class AlwaysLong:
    """Goes long whenever flat (size 25%), holds otherwise."""

    name = "always-long"

    def decide(self, context) -> StrategyDecision:
        kind = TradeActionKind.LONG if context.position_quantity == 0 else TradeActionKind.HOLD
        action = TradeAction(action=kind, size_pct=25 if kind is TradeActionKind.LONG else 0,
                             stop_loss_pct=50, take_profit_pct=500, rationale="test: always long")
        return StrategyDecision(action=action, strategy=self.name, inputs={})


def frame(prices: list[Decimal], step: timedelta, start: datetime = T0) -> pd.DataFrame:
    rows = []
    for i, close in enumerate(prices):
        open_ = prices[i - 1] if i else close
        rows.append({"start": start + i * step, "open": open_, "high": max(open_, close), "low": min(open_, close),
                     "close": close, "volume": Decimal(1000000)})
    return pd.DataFrame(rows).set_index("start")


def events(store, *types: str) -> list:
    return [logged.event for logged in store.iter_log() if logged.event.event_type in types]


def backtest(tmp_path, prices, *, step=timedelta(hours=1), env=None, product="BTC-USD", granularity="1h",
             spec: ProductSpec | None = None, balance=Decimal(10000)):
    settings = load_settings(env=env or {})
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    exchange = paper_exchange(settings)
    if spec is not None:
        exchange.trade_by(spec)
        exchange.deposit(spec.quote_currency, balance)
    loop = replace(loop_settings(settings, product=product, granularity=granularity, flush_every=50), spec=spec,
                   quote_currency=spec.quote_currency if spec else "USD")
    run = uuid.UUID(int=99)
    summary = run_backtest(store, frame(prices, step), exchange=exchange, strategy=AlwaysLong(), settings=loop,
                           initial_balance=balance, config_hash="test", code_version="test", run_id=run)
    return store, summary


def test_the_breaker_trips_once_at_its_limit_and_the_run_stays_flat_and_halted(tmp_path):
    # 60 hours up a little, then a steady 1% fall per hour: the position loses, equity falls past 2%.
    prices = [Decimal(100) + Decimal(i) / 10 for i in range(60)]
    prices += [prices[-1] * Decimal("0.99") ** k for k in range(1, 200)]
    store, summary = backtest(tmp_path, prices, env={"RISK__MAX_DRAWDOWN_PCT": "2", "RISK__RAPID_LOSS_PCT": "50",
                                                     "RISK__MAX_DAILY_LOSS_PCT": "50"})
    try:
        halts = events(store, "TradingHalted")
        breaker = [h for h in halts if h.reason.startswith("max_drawdown:")]
        assert len(breaker) == 1 and breaker[0].severity.value == "P0"
        assert summary.drawdown_halted_at == breaker[0].occurred_at
        assert not events(store, "TradingResumed")  # nobody lifted it: a P0 halt never lapses by itself
        fills_after = [f for f in events(store, "OrderFilled") if f.occurred_at > breaker[0].occurred_at]
        placed_after = [o for o in events(store, "OrderPlaced") if o.occurred_at >= breaker[0].occurred_at]
        assert len(placed_after) == 1 and placed_after[0].side.value == "SELL"  # flattened, nothing new after
        assert len(fills_after) <= 1
        refusals = [r for r in events(store, "RiskAssessed") if r.occurred_at > breaker[0].occurred_at]
        assert refusals and all(not r.approved and r.rule in ("halted", "halt_cooldown") for r in refusals)
        # equity stayed where the breaker left it (flat: no more P&L)
        assert summary.final_equity >= summary.initial_equity * Decimal("0.97")
        # the surfaces say so: the daily report of that day, /risk/metrics, the replay's state
        con = runner.open_readmodel(tmp_path / "rm.duckdb")
        runner.catch_up(store, con, runner.ALL_PROJECTIONS, 5000)
        day = breaker[0].occurred_at.date()
        assert daily_report(con, day, str(uuid.UUID(int=99)))["risk_analysis"]["drawdown_breaker_tripped"] is True
        tokens = json.dumps([{"name": "v", "token": "t-viewer", "role": "viewer"}])
        app = create_app(store, ReadModelAccess(con), load_settings(env={"SYSTEM__API_TOKENS": tokens,
                                                                         "RISK__MAX_DRAWDOWN_PCT": "2"}))
        risk = TestClient(app).get("/risk/metrics", headers={"Authorization": "Bearer t-viewer"}).json()
        assert risk["drawdown_breaker"]["reason"].startswith("max_drawdown:") and risk["max_drawdown_limit_pct"] == "2"
        state = state_at(load_day(store, day, run_id=uuid.UUID(int=99)), breaker[0].occurred_at)
        assert state["halted"] is True and state["halt_reason"].startswith("max_drawdown:")
        con.close()
    finally:
        store.close()


def test_drawdown_breach_names_the_rule_and_the_figures():
    limits = RiskLimits(max_drawdown_pct=Decimal(10))
    assert drawdown_breach(Decimal(1000), Decimal(901), limits) is None
    reason = drawdown_breach(Decimal(1000), Decimal(900), limits)
    assert reason.startswith("max_drawdown:") and "10" in reason and "1000" in reason
    assert drawdown_breach(Decimal(1000), Decimal(1), RiskLimits(max_drawdown_pct=None)) is None


def test_a_sub_cent_product_trades_with_protective_prices_on_its_grid(tmp_path):
    spec = ProductSpec.for_product("XLM-USD", Decimal("0.000001"), Decimal("1"), Decimal("1"), Decimal("1"))
    prices = [Decimal("0.0016") + Decimal("0.000001") * (i % 7) for i in range(120)]
    store, summary = backtest(tmp_path, prices, step=timedelta(minutes=1), product="XLM-USD", granularity="1m",
                              spec=spec)
    try:
        placed = events(store, "OrderPlaced")
        assert summary.orders >= 1 and placed
        entry = placed[0]
        assert entry.quantity == entry.quantity.to_integral_value()  # whole XLM: the base increment is 1
        assert Decimal(0) < entry.stop_loss_price < Decimal("0.0016") + Decimal("0.00001")
        assert entry.stop_loss_price == entry.stop_loss_price.quantize(Decimal("0.000001"))
        assert entry.take_profit_price == entry.take_profit_price.quantize(Decimal("0.000001"))
        assert events(store, "OrderFilled")
    finally:
        store.close()


def test_an_entry_below_the_minimum_size_is_a_risk_refusal_naming_the_rule(tmp_path):
    spec = ProductSpec.for_product("ETH-BTC", Decimal("0.00001"), Decimal("0.001"), Decimal("0.01"),
                                   Decimal("0.0001"))
    prices = [Decimal("0.05")] * 80
    # 25% of 0.001 BTC is 0.00025 BTC = 0.005 ETH: below the 0.01 ETH minimum
    store, summary = backtest(tmp_path, prices, product="ETH-BTC", spec=spec, balance=Decimal("0.001"),
                              env={"RISK__MIN_BALANCE": "0"})
    try:
        refused = [r for r in events(store, "RiskAssessed") if r.rule == "min_order_size"]
        assert refused and not refused[0].approved and "min_base_size" in refused[0].message
        assert summary.orders == 0
    finally:
        store.close()


@pytest.mark.parametrize("balance", [Decimal(1)])
def test_a_btc_quoted_pair_trades_in_btc(tmp_path, balance):
    spec = ProductSpec.for_product("ETH-BTC", Decimal("0.00001"), Decimal("0.0001"), Decimal("0.001"),
                                   Decimal("0.0001"))
    prices = [Decimal("0.05") + Decimal("0.0001") * (i % 5) for i in range(80)]
    store, summary = backtest(tmp_path, prices, product="ETH-BTC", spec=spec, balance=balance,
                              env={"RISK__MIN_BALANCE": "0.1"})
    try:
        assert summary.fills >= 1
        fill = events(store, "OrderFilled")[0]
        assert fill.fee_currency in (None, "BTC")
        assert summary.final_equity < Decimal(2)  # the books are in BTC, not USD
    finally:
        store.close()


def test_a_btc_quoted_product_takes_its_own_min_balance_from_its_settings_table(tmp_path):
    from api.bootstrap import risk_limits

    toml = tmp_path / "tradecore.toml"
    toml.write_text('[products."ETH-BTC"]\nquote_increment = "0.00001"\nbase_increment = "0.0001"\nmin_balance = "0.01"\n')
    settings = load_settings(env={}, config_file=toml)
    assert risk_limits(settings, "ETH-BTC").min_balance == Decimal("0.01")
    assert risk_limits(settings, "BTC-USD").min_balance == Decimal(100)  # risk.min_balance, in USD
    spec = ProductSpec.for_product("ETH-BTC", Decimal("0.00001"), Decimal("0.0001"))
    prices = [Decimal("0.05") + Decimal("0.0001") * (i % 5) for i in range(80)]
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        exchange = paper_exchange(settings)
        exchange.trade_by(spec)
        exchange.deposit("BTC", Decimal(1))
        loop = replace(loop_settings(settings, product="ETH-BTC", granularity="1h", flush_every=50), spec=spec,
                       quote_currency="BTC")
        summary = run_backtest(store, frame(prices, timedelta(hours=1)), exchange=exchange, strategy=AlwaysLong(),
                               settings=loop, initial_balance=Decimal(1), config_hash="t", code_version="t",
                               run_id=uuid.UUID(int=5))
        assert summary.fills >= 1  # with risk.min_balance (100 BTC) every entry would be refused
        assert not [r for r in events(store, "RiskAssessed") if r.rule == "min_balance"]
    finally:
        store.close()
