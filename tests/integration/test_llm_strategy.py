"""The llm strategy against a real OpenAI-compatible HTTP server on 127.0.0.1, through the openai SDK.

The server (stdlib ``http.server`` in a thread) answers POST /v1/chat/completions with the real
response shape, from a script of replies the test sets; it records every request it receives.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from domain.decision import DecisionContext
from domain.market import Candle
from infrastructure.llm.strategy import LLMStrategy
from tests.support.json_reply import send_json

API_KEY = "sk-test-4f8a1c9e2b7d4e6fa0c3"
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
GOOD = {"action": "LONG", "size_pct": 20, "take_profit_pct": 4, "stop_loss_pct": 2, "rationale": "wt cross up oversold"}


def reply(content: dict | str | None = None, *, status: int = 200, refusal: str | None = None,
          finish_reason: str = "stop", delay: float = 0.0, headers: dict | None = None, body: dict | None = None):
    """One scripted reply: a chat completion (content as JSON) or an error status with a body."""
    if body is None and status == 200:
        text = content if isinstance(content, str) or content is None else json.dumps(content)
        body = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1709251200,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": None if refusal else text, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240},
        }
    return {"status": status, "body": body, "delay": delay, "headers": headers or {}}


def error(status: int, message: str, **kw):
    return reply(status=status, body={"error": {"message": message, "type": "test", "param": None, "code": None}}, **kw)


class FakeOpenAI:
    """The test's view of the server: set ``script``, read ``requests``."""

    def __init__(self) -> None:
        self.script: list[dict] = [reply(GOOD)]
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def next_reply(self, request: dict) -> dict:
        with self.lock:
            self.requests.append(request)
            # The script is consumed in order; its last reply repeats.
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                planned = fake.next_reply({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(raw)})
                time.sleep(planned["delay"])
                self._send(planned["status"], planned["body"], planned["headers"])

            def _send(self, status, body, headers):
                send_json(self, status, body, headers)

        return Handler


@pytest.fixture
def server():
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def strategy(server, clock=None, **kw) -> LLMStrategy:
    options = dict(api_key=API_KEY, base_url=server.url, timeout=0.3, max_retries=2,
                   backoff_initial=0.001, backoff_max=0.01, now=(clock or FakeClock()).now)
    options.update(kw)
    return LLMStrategy(**options)


def candles(n: int) -> list[Candle]:
    out = []
    for i in range(n):
        close = D(60000 + 10 * i)
        out.append(Candle("BTC-USD", "1h", T0 + timedelta(hours=i), close - 5, close + 20, close - 30, close, D("12.5")))
    return out


def context(n_candles: int = 30, **kw) -> DecisionContext:
    recent = candles(n_candles)
    fields = dict(
        product="BTC-USD",
        candle=recent[-1],
        indicators={"wt1": -61.25, "wt2": -58.5, "wt_cross_up": True, "buy_signal": True, "rsi": 31.2,
                    "mfi_area": -0.0312, "warmup": False, "stoch_k": float("nan")},
        recent_candles=recent,
        position_quantity=D("0"),
        position_average_entry=None,
        equity=D("10000"),
        cash=D("10000"),
    )
    fields.update(kw)
    return DecisionContext(**fields)


def prompt_of(request: dict) -> str:
    return request["body"]["messages"][0]["content"]


# --- a good answer ---------------------------------------------------------------------------


def test_good_answer_becomes_the_decision_with_tokens_cost_and_latency(server):
    decision = strategy(server).decide(context())

    assert decision.failure_kind is None and decision.failure_detail == ""
    assert decision.action.action.value == "LONG"
    assert decision.action.size_pct == 20 and decision.action.stop_loss_pct == 2
    assert decision.strategy == "llm" and decision.model == "gpt-4o-mini"
    assert (decision.prompt_tokens, decision.completion_tokens) == (1200, 40)
    assert decision.cost == D("1200") * D("0.00015") / 1000 + D("40") * D("0.0006") / 1000
    assert decision.latency_ms > 0 and isinstance(decision.latency_ms, D)
    assert decision.cached is False
    assert decision.prompt_hash == hashlib.sha256(prompt_of(server.requests[0]).encode()).hexdigest()
    assert decision.inputs["wt1"] == -61.25 and decision.inputs["stoch_k"] is None
    assert len(server.requests) == 1


def test_request_carries_key_schema_and_limits(server):
    strategy(server, model="llama3.1:8b", max_tokens=321, temperature=0.25).decide(context())

    request = server.requests[0]
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "llama3.1:8b"
    assert body["max_tokens"] == 321 and body["temperature"] == 0.25
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["name"] == "TradeAction"
    assert set(schema["schema"]["properties"]) == {"action", "size_pct", "take_profit_pct", "stop_loss_pct", "rationale"}


def test_prompt_shows_indicators_position_and_last_n_candles(server):
    ctx = context(position_quantity=D("0.05"), position_average_entry=D("60000"), cash=D("7000"))
    strategy(server, candles_in_prompt=5).decide(ctx)

    prompt = prompt_of(server.requests[0])
    assert "- wt1: -61.25" in prompt and "- buy_signal: true" in prompt and "- stoch_k: n/a" in prompt
    assert "- mfi_area: -0.0312" in prompt
    assert "- side: long" in prompt and "- quantity: 0.05" in prompt and "- average entry price: 60000" in prompt
    assert "- equity: 10000" in prompt and "- cash: 7000" in prompt
    assert "unrealized P&L: +0.48%" in prompt  # close 60290 vs entry 60000
    lines = [line for line in prompt.splitlines() if line.startswith("2024-03-0")]
    assert len(lines) == 5
    assert lines[-1] == "2024-03-02T05:00:00+00:00,60285,60310,60260,60290,12.5"


# --- the cache -------------------------------------------------------------------------------


def test_same_prompt_within_ttl_is_served_from_cache_and_refetched_after(server):
    clock = FakeClock()
    llm = strategy(server, clock, cache_ttl_seconds=60)

    first = llm.decide(context())
    clock.at += timedelta(seconds=59)
    second = llm.decide(context())
    assert len(server.requests) == 1
    assert second.cached is True and first.cached is False
    assert second.action == first.action and second.prompt_hash == first.prompt_hash
    assert second.cost == 0 and second.prompt_tokens == 0

    clock.at += timedelta(seconds=2)  # 61 s after the first answer
    third = llm.decide(context())
    assert len(server.requests) == 2 and third.cached is False


def test_different_prompt_or_disabled_cache_asks_again(server):
    llm = strategy(server)
    llm.decide(context())
    llm.decide(context(cash=D("9999")))
    assert len(server.requests) == 2

    uncached = strategy(server, enable_caching=False)
    uncached.decide(context())
    uncached.decide(context())
    assert len(server.requests) == 4


def test_failures_are_not_cached(server):
    server.script = [error(400, "bad request"), reply(GOOD)]
    llm = strategy(server)
    assert llm.decide(context()).failure_kind == "error"
    assert llm.decide(context()).failure_kind is None
    assert len(server.requests) == 2


# --- transient failures and retries ----------------------------------------------------------


def test_slow_server_times_out_after_retries(server):
    server.script = [reply(GOOD, delay=0.6)]
    decision = strategy(server, max_retries=1).decide(context())

    assert decision.failure_kind == "timeout"
    assert decision.action.action.value == "HOLD" and decision.action.size_pct == 0
    assert "timeout" in decision.action.rationale
    assert "2 attempts" in decision.failure_detail
    assert len(server.requests) == 2
    assert D(550) < decision.latency_ms < D(3000)


def test_rate_limit_then_success_is_retried(server):
    server.script = [error(429, "Rate limit reached for gpt-4o-mini"), reply(GOOD)]
    decision = strategy(server).decide(context())

    assert decision.failure_kind is None and decision.action.action.value == "LONG"
    assert len(server.requests) == 2


def test_rate_limit_every_time_becomes_rate_limit_failure(server):
    server.script = [error(429, "Rate limit reached for gpt-4o-mini", headers={"retry-after-ms": "5"})]
    decision = strategy(server, max_retries=3).decide(context())

    assert decision.failure_kind == "rate_limit"
    assert "429" in decision.failure_detail and "4 attempts" in decision.failure_detail
    assert len(server.requests) == 4


def test_server_error_is_retried(server):
    server.script = [error(500, "The server had an error"), error(503, "overloaded"), reply(GOOD)]
    decision = strategy(server, max_retries=2).decide(context())

    assert decision.failure_kind is None and decision.action.action.value == "LONG"
    assert len(server.requests) == 3


def test_server_error_every_time_becomes_error_failure(server):
    server.script = [error(500, "The server had an error")]
    decision = strategy(server, max_retries=1).decide(context())

    assert decision.failure_kind == "error" and "HTTP 500" in decision.failure_detail
    assert len(server.requests) == 2


def test_client_error_is_not_retried(server):
    server.script = [error(400, "Invalid schema for response_format")]
    decision = strategy(server, max_retries=3).decide(context())

    assert decision.failure_kind == "error" and "HTTP 400" in decision.failure_detail
    assert len(server.requests) == 1


def test_unreachable_server_becomes_connection_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = LLMStrategy(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=0.3, max_retries=1,
                      backoff_initial=0.001)
    decision = llm.decide(context())

    assert decision.failure_kind == "connection" and "2 attempts" in decision.failure_detail


# --- answers that are not decisions ----------------------------------------------------------


def test_refusal_becomes_refusal_failure(server):
    server.script = [reply(refusal="I can't help with trading decisions.")]
    decision = strategy(server).decide(context())

    assert decision.failure_kind == "refusal"
    assert "can't help" in decision.failure_detail
    assert decision.action.action.value == "HOLD" and decision.prompt_tokens == 1200
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "bad_reply",
    [
        reply({**GOOD, "size_pct": 150}),
        reply({**GOOD, "action": "BUY"}),
        reply({**GOOD, "rationale": "x" * 201}),
        reply({**GOOD, "leverage": 10}),
        reply("I think you should buy."),
        reply('{"action": "LONG", "size_pct": 2', finish_reason="length"),
        reply(GOOD, finish_reason="content_filter"),
        reply(None),
    ],
    ids=["size-150", "unknown-action", "long-rationale", "extra-field", "not-json", "cut-off", "filtered", "empty"],
)
def test_reply_that_breaks_the_schema_becomes_schema_failure(server, bad_reply):
    server.script = [bad_reply]
    decision = strategy(server).decide(context())

    assert decision.failure_kind == "schema", decision.failure_detail
    assert decision.action.action.value == "HOLD" and decision.action.size_pct == 0
    assert decision.failure_detail and len(decision.failure_detail) <= 300
    assert len(server.requests) == 1  # a broken answer is not retried


def test_schema_failure_names_the_field_and_records_the_spend(server):
    server.script = [reply({**GOOD, "size_pct": 150})]
    decision = strategy(server).decide(context())

    assert "size_pct" in decision.failure_detail
    assert decision.prompt_tokens == 1200 and decision.cost > 0


def test_api_key_never_appears_in_failure_detail(server):
    server.script = [error(401, f"Incorrect API key provided: {API_KEY}. You can find your API key at ...")]
    decision = strategy(server).decide(context())

    assert decision.failure_kind == "error" and "HTTP 401" in decision.failure_detail
    assert API_KEY not in decision.failure_detail and API_KEY not in decision.action.rationale
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {API_KEY}"


# --- configuration -----------------------------------------------------------------------------


def test_template_with_unknown_placeholder_is_refused(tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text("Decide on $product at $price_now")
    with pytest.raises(ValueError, match="price_now"):
        LLMStrategy(api_key=API_KEY, prompt_template=template)


def test_custom_template_is_used(server, tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text("Decide for $product; close $close; costs $$0.\n$indicators")
    strategy(server, prompt_template=template).decide(context())

    assert prompt_of(server.requests[0]).startswith("Decide for BTC-USD; close 60290; costs $0.\n- warmup: false")


def test_backtest_with_llm_records_decisions_costs_and_failures_as_events(server, tmp_path):
    """The loop over real candles with the llm strategy: answers become DecisionMade, failures DecisionFailed + HOLD."""
    from api.bootstrap import loop_settings, open_store, paper_exchange
    from application.trading.backtest import run_backtest
    from infrastructure.candles.files import bundled_candles_path, read_candle_file
    from infrastructure.settings.loading import load_settings
    import uuid

    hold = {"action": "HOLD", "size_pct": 0, "take_profit_pct": None, "stop_loss_pct": None, "rationale": "no edge"}
    server.script = [
        reply(GOOD),
        reply({**GOOD, "size_pct": 150}),  # breaks the schema
        error(429, "slow down"),
        error(429, "slow down"),
        error(429, "slow down"),  # rate limited through every retry
        reply({"action": "CLOSE", "size_pct": 100, "take_profit_pct": None, "stop_loss_pct": None, "rationale": "exit"}),
        reply(hold),
    ]
    frame = read_candle_file(bundled_candles_path()).frame.iloc[100:112]
    settings = load_settings(env={})
    app = open_store(f"sqlite:///{tmp_path}/llm.db")
    summary = run_backtest(
        app, frame, exchange=paper_exchange(settings), strategy=strategy(server, max_retries=2),
        settings=loop_settings(settings, flush_every=1), initial_balance=D(10000), config_hash="t",
        code_version="t", run_id=uuid.uuid4(),
    )
    events = [e.event for e in app.iter_log()]
    made = [e for e in events if e.event_type == "DecisionMade"]
    failed = [e for e in events if e.event_type == "DecisionFailed"]
    assert len(made) + len(failed) == 12 == summary.decisions
    assert made[0].action.value == "LONG" and made[0].model == "gpt-4o-mini" and made[0].prompt_tokens == 1200
    assert made[0].cost > 0 and len(made[0].prompt_hash) == 64
    assert [f.kind.value for f in failed] == ["schema", "rate_limit"]
    assert all(f.fallback_action.value == "HOLD" for f in failed)
    assert made[1].action.value == "CLOSE"
    fills = [e for e in events if e.event_type == "OrderFilled"]
    assert len(fills) == 2 and summary.trades == 1
    assert API_KEY not in json.dumps([e.model_dump(mode="json") for e in events])
    app.close()
