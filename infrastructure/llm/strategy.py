"""The ``llm`` strategy: a language model behind any OpenAI-compatible endpoint decides.

The prompt (a ``string.Template`` file) shows the indicator state, the position and the last N
candles; the answer is parsed as structured output into ``TradeAction``. Every failure — timeout,
rate limit, refusal, output that breaks the schema, connection error, other API error — becomes a
HOLD decision that names the failure (``failure_kind``/``failure_detail``); ``decide`` never raises
for them. Transient errors (timeouts, connection errors, 429, 5xx) are retried here with exponential
backoff (the SDK's own retries are off, so the attempts are ours to count and test). Identical
prompts within the cache TTL reuse the earlier decision, marked ``cached=True``.

Tokens come from the response's ``usage`` block; a response without one records the tokens as
unknown (None). The cost is priced from ``prices`` (per million tokens, by model name); a model
without a price records its cost as unknown (None), never at another model's price.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import openai
import pydantic
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from domain.decision import DecisionContext, StrategyDecision
from domain.decision import FailureKind, TradeAction, TradeActionKind
from infrastructure.monitoring.calls import CALLS
from infrastructure.llm.pricing import DEFAULT_PRICES, PerMillionTokens, decision_cost

__all__ = ["LLMStrategy", "DEFAULT_PROMPT_TEMPLATE", "render_prompt", "llm_strategy_from_settings"]

DEFAULT_PROMPT_TEMPLATE = Path(__file__).with_name("prompts") / "decision.txt"

PROMPT_FIELDS = frozenset({
    "product", "granularity", "candle_time", "close", "indicators", "position_side", "position_quantity",
    "average_entry", "unrealized_pct", "equity", "cash", "candle_count", "candles",
})
# Indicators in the order the prompt lists them; others follow alphabetically.
INDICATOR_ORDER = (
    "warmup", "wt1", "wt2", "wt_cross", "wt_cross_up", "wt_cross_down", "wt_oversold", "wt_overbought",
    "buy_signal", "sell_signal", "gold_buy", "rsi", "mfi", "mfi_area", "stoch_k", "stoch_d",
    *(f"ema_ribbon_{i}" for i in range(1, 9)), "long_ema_signal", "short_ema_signal",
)
DETAIL_LIMIT = 300
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,})")


class LLMStrategy:
    """A ``DecisionModel`` named "llm" over the openai SDK (OpenAI, Ollama, vLLM, ...)."""

    name = "llm"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        timeout: float = 20.0,
        max_retries: int = 3,
        max_tokens: int = 800,
        temperature: float = 0.1,
        enable_caching: bool = True,
        cache_ttl_seconds: float = 300,
        now: Callable[[], datetime] | None = None,
        prompt_template: Path | str | None = None,
        candles_in_prompt: int = 24,
        prices: Mapping[str, PerMillionTokens] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        """``now`` is the clock of the cache TTL (default: the UTC wall clock); ``backoff_initial``
        and ``backoff_max`` bound the waits between retries (seconds); ``prices`` (per million
        tokens, by model; default ``DEFAULT_PRICES``, the settings pass ``llm.prices``) price each call."""
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r}: must be >= 0")
        if candles_in_prompt < 1:
            raise ValueError(f"candles_in_prompt={candles_in_prompt!r}: must be >= 1")
        self.model = model
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.candles_in_prompt = candles_in_prompt
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.template = _load_template(Path(prompt_template) if prompt_template else DEFAULT_PROMPT_TEMPLATE)
        self._api_key = api_key
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        self._cache = _DecisionCache(
            timedelta(seconds=cache_ttl_seconds) if enable_caching else None,
            now or (lambda: datetime.now(timezone.utc)),
        )

    def decide(self, context: DecisionContext) -> StrategyDecision:
        """Ask the model about the context's latest candle; failures come back as HOLD."""
        prompt = render_prompt(self.template, context, self.candles_in_prompt)
        prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        inputs: dict[str, float | bool | str | None] = dict(_plain_indicators(context.indicators))
        inputs["close"] = str(context.candle.close)
        inputs["position_quantity"] = str(context.position_quantity)
        cached = self._cache.get(prompt_hash)
        if cached is not None:
            return replace(cached, cached=True, latency_ms=Decimal(0), prompt_tokens=0, completion_tokens=0,
                           cost=Decimal(0), inputs=inputs)

        base = StrategyDecision(action=_hold("pending"), strategy=self.name, model=self.model,
                                prompt_hash=prompt_hash, inputs=inputs)
        started = time.perf_counter()
        usage: dict = {}
        attempts = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            completion = attempts(self._ask, prompt, usage)
        except Exception as exc:  # noqa: BLE001 - narrowed below; anything unexpected is re-raised
            kind = _failure_kind(exc)
            if kind is None:
                raise
            tried = attempts.statistics.get("attempt_number", 1)
            return self._failed(base, kind, _describe(exc, tried), started, usage)

        message = completion.choices[0].message
        if message.refusal:
            return self._failed(base, FailureKind.REFUSAL, f"model refused: {message.refusal}", started, usage)
        if message.parsed is None:
            return self._failed(base, FailureKind.SCHEMA, "model returned no content", started, usage)
        decision = replace(base, action=message.parsed, latency_ms=_ms_since(started), **self._spend(usage))
        self._cache.put(prompt_hash, decision)
        return decision

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _ask(self, prompt: str, usage: dict):
        # One attempt. The usage is read from the raw body before parsing, so a reply that breaks
        # the schema still records the tokens it cost.
        raw = self._client.chat.completions.with_raw_response.parse(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            response_format=TradeAction,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        usage.clear()
        try:
            usage.update(raw.http_response.json().get("usage") or {})
        except (ValueError, AttributeError):
            pass
        return raw.parse()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = _retry_after(exc)
        if hinted is not None:
            wait = min(hinted, self.backoff_max)
        else:
            wait = min(self.backoff_initial * 2 ** (state.attempt_number - 1), self.backoff_max)
        # metrics hook (infrastructure/monitoring/calls.py): retries and rate-limit waits per model;
        # tenacity asks for the wait after the last attempt too, when no retry follows
        if state.attempt_number <= self.max_retries:
            CALLS.llm_retry(self.model, wait, rate_limited=isinstance(exc, openai.RateLimitError))
        return wait

    def _spend(self, usage: dict) -> dict:
        # No usage block (or no count in it): the tokens are unknown, and so is the cost.
        prompt_tokens = _count(usage.get("prompt_tokens"))
        completion_tokens = _count(usage.get("completion_tokens"))
        cost = decision_cost(self.prices, self.model, prompt_tokens, completion_tokens)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost": cost}

    def _failed(self, base: StrategyDecision, kind: FailureKind, detail: str, started: float,
                usage: dict) -> StrategyDecision:
        detail = self._redact(detail)
        return replace(
            base,
            action=_hold(f"LLM {kind.value}: holding"),
            latency_ms=_ms_since(started),
            failure_kind=kind.value,
            failure_detail=detail,
            **self._spend(usage),
        )

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        text = _KEY_LIKE.sub("sk-***", text)
        return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."


@dataclass
class _DecisionCache:
    """Successful decisions by prompt hash, each valid for ``ttl`` after it was stored."""

    ttl: timedelta | None  # None: caching is off
    now: Callable[[], datetime]

    def __post_init__(self) -> None:
        self._entries: dict[str, tuple[datetime, StrategyDecision]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> StrategyDecision | None:
        if not self.ttl:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.now() - entry[0] >= self.ttl:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: str, decision: StrategyDecision) -> None:
        if not self.ttl:
            return
        at = self.now()
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if at - v[0] < self.ttl}
            self._entries[key] = (at, decision)


def render_prompt(template: string.Template, context: DecisionContext, candles_in_prompt: int) -> str:
    """The full prompt text for one context (its sha256 is the decision's ``prompt_hash``)."""
    candle = context.candle
    candles = list(context.recent_candles)
    if not candles or candles[-1].start != candle.start:
        candles.append(candle)
    candles = candles[-candles_in_prompt:]
    quantity = context.position_quantity
    entry = context.position_average_entry
    side = "flat" if quantity == 0 else ("long" if quantity > 0 else "short")
    if entry and quantity:
        move = (candle.close - entry) / entry * 100 * (1 if quantity > 0 else -1)
        unrealized = f"{move:+.2f}%"
    else:
        unrealized = "n/a"
    return template.substitute(
        product=context.product,
        granularity=candle.granularity,
        candle_time=candle.start.isoformat(),
        close=candle.close,
        indicators="\n".join(f"- {name}: {_show(value)}" for name, value in _plain_indicators(context.indicators)),
        position_side=side,
        position_quantity=quantity,
        average_entry="n/a" if entry is None else entry,
        unrealized_pct=unrealized,
        equity=context.equity,
        cash=context.cash,
        candle_count=len(candles),
        candles="\n".join(
            f"{c.start.isoformat()},{c.open},{c.high},{c.low},{c.close},{c.volume}" for c in candles
        ),
    )


def _load_template(path: Path) -> string.Template:
    template = string.Template(path.read_text(encoding="utf-8"))
    unknown = set(template.get_identifiers()) - PROMPT_FIELDS
    if not template.is_valid() or unknown:
        raise ValueError(
            f"prompt template {path}: unknown or malformed placeholders {sorted(unknown) or '(a bad $)'}; "
            f"allowed: {', '.join(sorted(PROMPT_FIELDS))} (write $$ for a literal $)"
        )
    return template


def _plain_indicators(indicators: dict) -> list[tuple[str, float | bool | str | None]]:
    """The indicators in prompt order as plain JSON-safe values (numpy scalars unwrapped, NaN -> None)."""
    rank = {name: i for i, name in enumerate(INDICATOR_ORDER)}
    plain = []
    for name in sorted(indicators, key=lambda n: (rank.get(n, len(rank)), n)):
        value = indicators[name]
        if hasattr(value, "item") and not isinstance(value, (bool, int, float, str)):
            value = value.item()  # a numpy scalar
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            value = str(value)
        plain.append((name, value))
    return plain


def _show(value: float | bool | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def _count(value: object) -> int | None:
    """A token count from the usage block; None when absent or not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _hold(rationale: str) -> TradeAction:
    return TradeAction(action=TradeActionKind.HOLD, size_pct=0, rationale=rationale[:200])


def _ms_since(started: float) -> Decimal:
    return Decimal(f"{(time.perf_counter() - started) * 1000:.3f}")


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: timeouts, connection errors, rate limits, server errors."""
    if isinstance(exc, (openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _retry_after(exc: BaseException | None) -> float | None:
    """The server's Retry-After hint (seconds), if a status error carries one."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for header, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            return max(float(headers[header]) / scale, 0.0)
        except (KeyError, ValueError):
            continue
    return None


def _failure_kind(exc: BaseException) -> FailureKind | None:
    """The failure an exception means, or None when it is not an LLM failure (a bug: re-raise)."""
    if isinstance(exc, openai.APITimeoutError):
        return FailureKind.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return FailureKind.CONNECTION
    if isinstance(exc, openai.RateLimitError):
        return FailureKind.RATE_LIMIT
    if isinstance(exc, (pydantic.ValidationError, openai.LengthFinishReasonError,
                        openai.ContentFilterFinishReasonError, openai.APIResponseValidationError)):
        return FailureKind.SCHEMA
    if isinstance(exc, openai.OpenAIError):
        return FailureKind.ERROR
    return None


def _describe(exc: BaseException, attempts: int) -> str:
    tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return f"request timed out{tries}"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection failed{tries}: {exc.__cause__ or exc}"
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(reply)'}: {err['msg']}" for err in exc.errors()[:3]
        )
        return f"reply breaks the TradeAction schema: {problems}"
    if isinstance(exc, openai.LengthFinishReasonError):
        return "reply cut off at the max_tokens limit before the JSON was complete"
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return "reply stopped by the provider's content filter"
    if isinstance(exc, openai.APIStatusError):
        message = re.sub(r"^Error code: \d+ - ", "", exc.message)
        return f"HTTP {exc.status_code} {type(exc).__name__}{tries}: {message}"
    return f"{type(exc).__name__}: {exc}"


def llm_strategy_from_settings(llm, now: Callable[[], datetime] | None = None) -> LLMStrategy:
    """The ``llm`` strategy as the ``[llm]`` settings section describes it, prices included.

    The composition root builds the strategy through this, so ``llm.prices`` reaches the cost.
    """
    return LLMStrategy(
        api_key=llm.api_key.get_secret_value() if llm.api_key else "not-needed",
        model=llm.model,
        base_url=llm.base_url,
        timeout=llm.request_timeout,
        max_retries=llm.max_retries,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
        enable_caching=llm.enable_caching,
        cache_ttl_seconds=llm.cache_ttl_seconds,
        prompt_template=llm.prompt_template,
        candles_in_prompt=llm.candles_in_prompt,
        prices=llm.prices,
        now=now,
    )
