"""Venue and LLM calls as Prometheus figures (by endpoint / model and run mode) and as log lines.

The Coinbase client talks to the loopback stand-in through the real SDK; the LLM strategy to a
loopback OpenAI-compatible server. Each test reads its own CallMetrics registry values.
"""

from __future__ import annotations

import logging
from pathlib import Path
import threading
from datetime import timedelta

import pytest

from domain.decision import DecisionContext
from infrastructure.monitoring.calls import CALLS, MeteredDecisionModel
from infrastructure.venues.coinbase.client import CoinbaseClient
from infrastructure.venues.coinbase.errors import RetryPolicy
from tests.integration.test_llm_strategy import FakeOpenAI, context, error, reply, strategy, GOOD
from tests.support.coinbase_standin import CoinbaseStandIn


def value(name: str, **labels) -> float:
    return CALLS.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def llm():
    fake = FakeOpenAI()
    threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture
def paper_mode():
    CALLS.set_mode("paper")
    yield
    CALLS.set_mode("none")


def test_venue_calls_are_timed_per_endpoint_with_retries_rate_limit_waits_and_errors(stand, paper_mode, caplog):
    client = CoinbaseClient(base_url=stand.base_url, ca_bundle=stand.ca_file,
                            retry=RetryPolicy(attempts=3, initial_wait=0.01))
    labels = dict(venue="coinbase", endpoint="get_unix_time", mode="paper")
    before_ok = value("trading_bot_venue_request_duration_seconds_count", outcome="ok", **labels)
    before_429 = value("trading_bot_venue_errors_total", kind="rate_limited", **labels)
    before_wait = value("trading_bot_venue_rate_limit_wait_seconds_total", **labels)
    before_retries = value("trading_bot_venue_retries_total", **labels)
    stand.knobs.rate_limits.append(("/api/v3/brokerage/time", 0.2))
    with caplog.at_level(logging.DEBUG, logger="tradecore.calls"):
        client.server_time()
    assert value("trading_bot_venue_request_duration_seconds_count", outcome="ok", **labels) == before_ok + 1
    assert value("trading_bot_venue_errors_total", kind="rate_limited", **labels) == before_429 + 1
    assert value("trading_bot_venue_rate_limit_wait_seconds_total", **labels) == pytest.approx(before_wait + 0.2)
    assert value("trading_bot_venue_retries_total", **labels) == before_retries + 1
    records = [r for r in caplog.records if r.name == "tradecore.calls"]
    assert [r.levelname for r in records] == ["WARNING", "DEBUG"]
    assert records[0].fields["error_kind"] == "rate_limited" and records[1].fields["endpoint"] == "get_unix_time"
    text = CALLS.render().decode()
    assert 'trading_bot_venue_request_duration_seconds_bucket{endpoint="get_unix_time"' in text


def test_llm_decisions_are_timed_per_model_with_failures_by_kind_and_cached_answers_not_counted(llm, paper_mode):
    model = MeteredDecisionModel(strategy(llm, model="gpt-4o-mini"))
    labels = dict(model="gpt-4o-mini", mode="paper")
    ok_before = value("trading_bot_llm_request_duration_seconds_count", outcome="ok", **labels)
    limited_before = value("trading_bot_llm_errors_total", kind="rate_limit", **labels)
    tokens_before = value("trading_bot_llm_tokens_total", direction="prompt", **labels)
    retries_before = value("trading_bot_llm_retries_total", **labels)
    waited_before = value("trading_bot_llm_rate_limit_wait_seconds_total", **labels)
    llm.script = [reply(GOOD)]
    model.decide(context())
    model.decide(context())  # the same prompt: served from the cache, not a call
    llm.script = [error(429, "slow down")]
    failed = model.decide(context(n_candles=31))
    assert failed.failure_kind == "rate_limit"
    assert value("trading_bot_llm_request_duration_seconds_count", outcome="ok", **labels) == ok_before + 1
    assert value("trading_bot_llm_errors_total", kind="rate_limit", **labels) == limited_before + 1
    assert value("trading_bot_llm_tokens_total", direction="prompt", **labels) == tokens_before + 1200
    # the strategy retried the 429 (max_retries=2): two retries, each a rate-limit wait
    assert value("trading_bot_llm_retries_total", **labels) == retries_before + 2
    assert value("trading_bot_llm_rate_limit_wait_seconds_total", **labels) > waited_before
    assert model.name == "llm"


def test_trades_total_counts_only_the_current_paper_run_labelled_by_mode(tmp_path):
    import shutil
    import uuid
    from decimal import Decimal

    from domain.control import Run
    from domain.events import EventMeta
    from domain.order import Order
    from tests.integration.test_api import NOW, Node, backtest_read_model
    from tests.support.recording import record

    url, path = backtest_read_model(tmp_path / "built", "2018-01-01", "2018-01-04")
    shutil.copy(Path(url[len("sqlite:///"):]), tmp_path / "events.db")
    shutil.copy(path, tmp_path / "readmodel.duckdb")
    node = Node(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "readmodel.duckdb")
    try:
        assert 'trading_bot_trades_total{bot="none",mode="none"} 0.0' in node.client.get("/metrics").text
        run_id = uuid.uuid4()
        meta = EventMeta(NOW, "system", run_id, None, run_id)
        record(node.store, Run.begin(run_id, meta, mode="paper", product="BTC-USD", granularity="1h", strategy="rules",
                                     config_hash="h", code_version="t", bot_id="paper-a"))
        order = Order.place(uuid.uuid4(), meta, product="BTC-USD", side="BUY", order_type="MARKET",
                            quantity=Decimal("0.1"))
        order.submit(meta)
        order.accept(meta, venue_order_id="v-1")
        order.fill(meta, fill_id="paper-1", quantity=Decimal("0.1"), price=Decimal("40000"), fee=Decimal("24"),
                   fee_currency="USD", liquidity="TAKER")
        record(node.store, order)
        node.catch_up()
        text = node.client.get("/metrics").text
        assert 'trading_bot_trades_total{bot="paper-a",mode="paper"} 1.0' in text  # the backtest's fills do not count
        assert 'trading_bot_halted{bot="paper-a"} 0.0' in text and 'trading_bot_halted{bot="all"} 0.0' in text
    finally:
        node.close()
