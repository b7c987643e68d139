"""Every call to an outside service, measured: Prometheus figures and one log line per call.

Venue calls (per endpoint) and LLM calls (per model) are observed here, labelled with the run's
mode (``paper``, ``live``; ``none`` outside a run), so the Grafana "API Response Times" panel
shows Coinbase and the LLM, and ``tradecore logs analyze`` finds each call in the log:

- a call that succeeds is logged at DEBUG (``call ok``), one that fails at WARNING
  (``call failed``), each with ``service``, ``endpoint``, ``latency_ms``, ``outcome``, ``attempt``
  and ``error_kind`` as JSON fields;
- ``trading_bot_venue_request_duration_seconds`` / ``trading_bot_llm_request_duration_seconds``
  (histograms), ``..._errors_total`` by kind, ``trading_bot_venue_retries_total`` and
  ``trading_bot_venue_rate_limit_wait_seconds_total`` (the waits a 429 imposed).

One ``CallMetrics`` per process (``CALLS``): the REST API of the same process serves its registry
on ``/metrics`` beside its own figures.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger("tradecore.calls")

CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)


class CallMetrics:
    """The Prometheus registry of outside calls, and the log line of each."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.mode = "none"
        self._lock = threading.Lock()
        r = self.registry
        self.venue_duration = Histogram(
            "trading_bot_venue_request_duration_seconds", "venue REST call duration by endpoint (each attempt)",
            ["venue", "endpoint", "outcome", "mode"], buckets=CALL_BUCKETS, registry=r)
        self.venue_errors = Counter(
            "trading_bot_venue_errors", "failed venue call attempts by endpoint and kind",
            ["venue", "endpoint", "kind", "mode"], registry=r)
        self.venue_retries = Counter(
            "trading_bot_venue_retries", "venue call attempts after the first (retries)",
            ["venue", "endpoint", "mode"], registry=r)
        self.venue_rate_limit_wait = Counter(
            "trading_bot_venue_rate_limit_wait_seconds", "seconds waited because the venue answered 429",
            ["venue", "endpoint", "mode"], registry=r)
        self.llm_duration = Histogram(
            "trading_bot_llm_request_duration_seconds", "LLM decision duration by model (retries included)",
            ["model", "outcome", "mode"], buckets=CALL_BUCKETS, registry=r)
        self.llm_errors = Counter(
            "trading_bot_llm_errors", "failed LLM decisions by model and kind (timeout, rate_limit, ...)",
            ["model", "kind", "mode"], registry=r)
        self.llm_tokens = Counter(
            "trading_bot_llm_tokens", "tokens spent by model and direction", ["model", "direction", "mode"], registry=r)
        self.llm_retries = Counter(
            "trading_bot_llm_retries", "LLM request attempts after the first", ["model", "mode"], registry=r)
        self.llm_rate_limit_wait = Counter(
            "trading_bot_llm_rate_limit_wait_seconds", "seconds waited because the LLM answered 429",
            ["model", "mode"], registry=r)

    def set_mode(self, mode: str) -> None:
        """The run's mode, as a label of every figure recorded from now on."""
        self.mode = str(mode)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- the venue ----------------------------------------------------------------------------------

    def venue_call(self, venue: str, endpoint: str, seconds: float, *, attempt: int = 1, error: BaseException | None = None,
                   error_kind: str | None = None, rate_limit_wait: float | None = None) -> None:
        """One attempt of a venue call: its duration and outcome (``error`` None: it succeeded)."""
        mode = self.mode
        outcome = "ok" if error is None else "error"
        self.venue_duration.labels(venue, endpoint, outcome, mode).observe(seconds)
        if attempt > 1:
            self.venue_retries.labels(venue, endpoint, mode).inc()
        if error is not None:
            self.venue_errors.labels(venue, endpoint, error_kind or "error", mode).inc()
        if rate_limit_wait:
            self.venue_rate_limit_wait.labels(venue, endpoint, mode).inc(rate_limit_wait)
        fields = {"service": venue, "endpoint": endpoint, "latency_ms": round(seconds * 1000, 1), "outcome": outcome,
                  "attempt": attempt, "mode": mode}
        if error is None:
            log.debug("call ok: %s %s in %.0f ms", venue, endpoint, seconds * 1000, extra={"fields": fields})
        else:
            fields["error_kind"] = error_kind or "error"
            log.warning("call failed: %s %s after %.0f ms (attempt %d): %s", venue, endpoint, seconds * 1000, attempt,
                        _short(error), extra={"fields": fields})

    # --- the LLM ------------------------------------------------------------------------------------

    def llm_call(self, model: str, seconds: float, *, failure_kind: str | None, cached: bool = False,
                 prompt_tokens: int | None = 0, completion_tokens: int | None = 0, detail: str = "") -> None:
        """One decision asked of the model (a cached answer is not a call and is not counted)."""
        if cached:
            return
        mode = self.mode
        outcome = "ok" if failure_kind is None else "error"
        self.llm_duration.labels(model, outcome, mode).observe(seconds)
        if failure_kind is not None:
            self.llm_errors.labels(model, failure_kind, mode).inc()
        for direction, count in (("prompt", prompt_tokens), ("completion", completion_tokens)):
            if count:
                self.llm_tokens.labels(model, direction, mode).inc(count)
        fields = {"service": "llm", "endpoint": model, "latency_ms": round(seconds * 1000, 1), "outcome": outcome,
                  "mode": mode}
        if failure_kind is None:
            log.debug("call ok: llm %s in %.0f ms", model, seconds * 1000, extra={"fields": fields})
        else:
            fields["error_kind"] = failure_kind
            log.warning("call failed: llm %s after %.0f ms: %s: %s", model, seconds * 1000, failure_kind,
                        detail[:300], extra={"fields": fields})


    def llm_retry(self, model: str, wait: float, *, rate_limited: bool) -> None:
        """The LLM strategy is about to retry after ``wait`` seconds (a 429 when ``rate_limited``)."""
        mode = self.mode
        self.llm_retries.labels(model, mode).inc()
        if rate_limited:
            self.llm_rate_limit_wait.labels(model, mode).inc(wait)
        log.info("llm %s: retrying in %.2fs%s", model, wait, " (rate limited)" if rate_limited else "",
                 extra={"fields": {"service": "llm", "endpoint": model, "retry_wait_s": wait, "mode": mode}})


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


CALLS = CallMetrics()
"""This process's outside-call figures."""


class MeteredDecisionModel:
    """A ``DecisionModel`` whose every decision is measured as an LLM call (rules strategies are not wrapped)."""

    def __init__(self, model: Any, calls: CallMetrics = CALLS):
        self.inner = model
        self.name = model.name
        self.calls = calls

    def decide(self, context):  # noqa: ANN001, ANN201 - the DecisionModel port's signature
        started = time.perf_counter()
        decision = self.inner.decide(context)
        elapsed = time.perf_counter() - started
        self.calls.llm_call(decision.model or getattr(self.inner, "model", "?"), elapsed,
                            failure_kind=decision.failure_kind, cached=decision.cached,
                            prompt_tokens=decision.prompt_tokens, completion_tokens=decision.completion_tokens,
                            detail=decision.failure_detail)
        return decision

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


__all__ = ["CALLS", "CallMetrics", "MeteredDecisionModel", "replace"]
