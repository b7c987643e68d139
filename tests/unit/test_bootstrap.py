"""The composition root builds what each command runs from the settings (api/bootstrap.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from api import bootstrap
from domain.control import Run
from domain.events import EventMeta
from infrastructure.settings.loading import load_settings
from projections.engine.runner import TRACKING
from tests.conftest import T0
from tests.support.coinbase_standin import make_api_key


def settings(**overrides):
    return load_settings(config_file=None, env={}, overrides=overrides)


def test_the_llm_strategy_is_built_with_the_configured_prices():
    prices = {"my-model": {"input_per_million": "1.25", "output_per_million": "5"}}
    model = bootstrap.decision_model(settings(**{"trading.strategy": "llm", "llm.base_url": "http://127.0.0.1:9/v1",
                                                 "llm.model": "my-model", "llm.prices": prices}))
    assert model.name == "llm"
    price = model.prices["my-model"]
    assert (Decimal(price.input_per_million), Decimal(price.output_per_million)) == (Decimal("1.25"), Decimal("5"))


def test_the_llm_strategy_without_a_key_or_server_names_the_missing_setting():
    with pytest.raises(bootstrap.MissingSetting, match="LLM__API_KEY"):
        bootstrap.decision_model(settings(**{"trading.strategy": "llm"}))


def test_a_paper_venue_fills_on_the_paper_exchange_and_has_no_account_to_reconcile():
    venue = bootstrap.coinbase_venue(settings(), live=False, product="BTC-USD", granularity="1h", paper_prefix="paper-x")
    assert type(venue.gateway).__name__ == "PaperExchange" and venue.gateway.id_prefix == "paper-x"
    assert venue.account is None
    assert venue.candles.step == timedelta(hours=1)


def test_a_live_venue_sends_orders_to_coinbase_and_reconciles_with_it():
    name, pem, _ = make_api_key()
    keyed = settings(**{"exchange.api_key": name, "exchange.api_secret": pem})
    venue = bootstrap.coinbase_venue(keyed, live=True, product="BTC-USD", granularity="5m")
    assert type(venue.gateway).__name__ == "CoinbaseGateway" and venue.account is venue.gateway


def test_the_scratch_store_keeps_what_was_recorded_and_writes_nothing_elsewhere():
    store = bootstrap.scratch_store()
    try:
        run = Run.begin(uuid.uuid4(), EventMeta(T0), mode="backtest", product="BTC-USD", granularity="1h",
                        strategy="rules", config_hash="h", code_version="t")
        store.record_in_order(run.collect_events())
        assert [type(e).__name__ for e in store.recorded] == ["RunStarted"]
        assert store.max_notification_id() == 1
    finally:
        store.close()


def test_the_read_model_opens_at_the_configured_path(tmp_path):
    path = tmp_path / "rm" / "readmodel.duckdb"
    con = bootstrap.readmodel(settings(**{"readmodel.path": str(path)}))
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {TRACKING} (name VARCHAR)")
    finally:
        con.close()
    assert path.exists()
    with pytest.raises(ValueError, match="settings or a path"):
        bootstrap.readmodel()


def test_the_wall_clock_is_utc_and_ids_are_fresh():
    assert bootstrap.wall_clock().now().utcoffset() == timedelta(0)
    ids = bootstrap.random_ids()
    assert ids.new_id() != ids.new_id()
