"""LLM cost that is true: prices per model from the settings, unknown model -> cost unknown,
a response without ``usage`` -> tokens unknown, counted by ``llm_stats`` and ``/llm/status``.

Against the loopback OpenAI stand-in of test_llm_strategy (a real HTTP server on 127.0.0.1).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal as D

from fastapi.testclient import TestClient

from api.bootstrap import open_store
from api.http import create_app
from api.http.readmodel import ReadModelAccess
from domain.control import Run
from domain.decision import Decision, DecisionMade
from domain.events import EventMeta
from infrastructure.eventstore.mapper import EventMapper, encode_event
from infrastructure.llm.strategy import llm_strategy_from_settings
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from tests.integration.test_api import api_settings, auth
from tests.integration.test_llm_strategy import GOOD, T0, context, reply, server, strategy  # noqa: F401 (fixture)
from tests.support.recording import record

RUN = uuid.UUID("00000000-0000-4000-8000-0000000000c5")


def no_usage_reply() -> dict:
    planned = reply(GOOD)
    del planned["body"]["usage"]
    return planned


def test_gpt_4o_mini_is_priced_per_million_tokens(server):
    decision = strategy(server).decide(context())
    assert (decision.prompt_tokens, decision.completion_tokens) == (1200, 40)
    assert decision.cost == (1200 * D("0.15") + 40 * D("0.60")) / 1_000_000


def test_prices_from_settings_price_the_configured_model(server):
    settings = load_settings(env={
        "LLM__MODEL": "house-model", "LLM__BASE_URL": server.url, "LLM__API_KEY": "sk-test-abcdefgh",
        "LLM__PRICES": json.dumps({"house-model": {"input_per_million": "2", "output_per_million": "8"}}),
    })
    assert settings.llm.prices["gpt-4o-mini"].input_per_million == D("0.15")  # defaults stay
    decision = llm_strategy_from_settings(settings.llm).decide(context())
    assert decision.model == "house-model"
    assert decision.cost == (1200 * D(2) + 40 * D(8)) / 1_000_000


def test_unknown_model_records_cost_as_unknown_not_another_models_price(server):
    decision = strategy(server, model="llama3.1:8b-instruct").decide(context())
    assert decision.failure_kind is None
    assert decision.prompt_tokens == 1200 and decision.cost is None


def test_response_without_usage_records_tokens_and_cost_as_unknown(server):
    server.script = [no_usage_reply()]
    decision = strategy(server).decide(context())
    assert decision.failure_kind is None and decision.action.action.value == "LONG"
    assert decision.prompt_tokens is None and decision.completion_tokens is None and decision.cost is None


def test_old_stored_decision_with_cost_still_loads_and_a_null_cost_round_trips():
    mapper = EventMapper()
    meta = EventMeta(T0, "strategy:llm", run_id=RUN)
    fields = dict(strategy="llm", model="gpt-4o-mini", product="BTC-USD", candle_start=T0, action="HOLD",
                  size_pct=D(0), rationale="flat")
    # The stored form old code wrote: tokens as integers, cost as a decimal string.
    old = DecisionMade.build(uuid.uuid4(), 1, meta, prompt_tokens=1200, completion_tokens=40, cost=D("0.000204"), **fields)
    stored = mapper.to_stored_event(old)
    assert b'"cost":"0.000204"' in stored.state and b'"prompt_tokens":1200' in stored.state
    loaded = mapper.to_domain_event(stored)
    assert loaded.cost == D("0.000204") and loaded.prompt_tokens == 1200
    unknown = DecisionMade.build(uuid.uuid4(), 1, meta, prompt_tokens=None, completion_tokens=None, cost=None, **fields)
    assert b'"cost":null' in encode_event(unknown)
    again = mapper.to_domain_event(mapper.to_stored_event(unknown))
    assert again.cost is None and again.prompt_tokens is None


def test_llm_status_counts_decisions_without_usage_and_without_price(server, tmp_path):
    server.script = [reply(GOOD), no_usage_reply(), reply({**GOOD, "rationale": "third"})]
    priced, no_usage = strategy(server, enable_caching=False), strategy(server, enable_caching=False)
    decided = [priced.decide(context()), no_usage.decide(context(cash=D("9000"))),
               strategy(server, model="mystery-model").decide(context(cash=D("8000")))]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = open_store(url)
    record(store, Run.begin(RUN, EventMeta(T0, run_id=RUN, correlation_id=RUN), mode="paper", product="BTC-USD",
                            granularity="1h", strategy="llm", config_hash="c", code_version="t",
                            initial_balance=D(10000)))
    for i, d in enumerate(decided):
        a = d.action
        record(store, Decision.make(uuid.uuid4(), EventMeta(T0 + timedelta(hours=i), "strategy:llm", run_id=RUN),
                                    strategy="llm", model=d.model, prompt_hash=d.prompt_hash, product="BTC-USD",
                                    candle_start=T0 + timedelta(hours=i), action=a.action, size_pct=D(a.size_pct),
                                    rationale=a.rationale, prompt_tokens=d.prompt_tokens,
                                    completion_tokens=d.completion_tokens, cost=d.cost))
    con = runner.open_readmodel(tmp_path / "readmodel.duckdb")
    runner.catch_up(store, con, runner.ALL_PROJECTIONS, 1000)
    rows = con.execute("SELECT prompt_tokens, cost FROM decisions ORDER BY candle_start").fetchall()
    assert rows[0][0] == 1200 and rows[1] == (None, None) and rows[2][0] == 1200 and rows[2][1] is None

    app = create_app(store, ReadModelAccess(con), api_settings(TRADING__STRATEGY="llm"))
    status = TestClient(app).get("/llm/status", headers=auth("viewer")).json()
    assert status["calls"] == 3 and status["failures"] == 0
    assert status["prompt_tokens"] == 2400  # the two that reported usage
    assert status["usage_unknown"] == 1 and status["cost_unknown"] == 2
    assert D(status["cost"]) == (1200 * D("0.15") + 40 * D("0.60")) / 1_000_000
    con.close()
    store.close()
