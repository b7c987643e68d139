"""Strategy decisions and the risk verdict on them.

A decision is its own stream: ``DecisionMade`` (or ``DecisionFailed``, which
falls back to HOLD) starts it, and the single ``RiskAssessed`` verdict on it
follows. A decision can be assessed once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.aggregate import Aggregate, StartingEvent
from domain.market import Candle
from domain.events import DomainError, DomainEvent, EventMeta, FieldProblem, Money, NonNegative, Percent, UtcDatetime


class TradeActionKind(str, Enum):
    LONG = "LONG"
    SHORT = "SHORT"
    CLOSE = "CLOSE"
    HOLD = "HOLD"


class TradeAction(BaseModel):
    """What a strategy wants: the structured output an LLM must produce."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: TradeActionKind
    size_pct: float = Field(ge=0, le=100, description="share of equity to commit, 0..100")
    take_profit_pct: float | None = Field(default=None, ge=0, le=1000)
    stop_loss_pct: float | None = Field(default=None, ge=0, le=100)
    rationale: str = Field(max_length=200)


@dataclass(frozen=True)
class DecisionContext:
    """What a strategy sees when it decides on one closed candle."""

    product: str
    candle: Candle
    indicators: dict[str, float | bool | None]
    recent_candles: list[Candle]
    position_quantity: Decimal
    position_average_entry: Decimal | None
    equity: Decimal
    cash: Decimal

@dataclass(frozen=True)
class StrategyDecision:
    """A strategy's answer: the action, or the failure that made it HOLD."""

    action: TradeAction
    strategy: str
    model: str | None = None
    prompt_hash: str | None = None
    latency_ms: Decimal = Decimal(0)
    prompt_tokens: int | None = 0  # None: the response said nothing about usage
    completion_tokens: int | None = 0
    cost: Decimal | None = Decimal(0)  # None: unknown (no price for the model, or no usage)
    cached: bool = False
    failure_kind: str | None = None  # a FailureKind value when the strategy failed
    failure_detail: str = ""
    inputs: dict[str, float | bool | str | None] = field(default_factory=dict)


class FailureKind(str, Enum):
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    REFUSAL = "refusal"
    SCHEMA = "schema"
    CONNECTION = "connection"
    ERROR = "error"


JsonScalar = float | int | bool | str | None


class DecisionMade(StartingEvent):
    """The strategy's decision on one candle, with what it saw and what it cost.

    ``prompt_tokens``/``completion_tokens`` are None when the model's response reported no usage;
    ``cost`` (USD) is None when it is unknown: no usage, or no price for the model.
    """

    strategy: str
    model: str | None = None
    prompt_hash: str | None = None
    product: str
    candle_start: UtcDatetime
    inputs: dict[str, JsonScalar] = {}
    action: TradeActionKind
    size_pct: Percent
    take_profit_pct: NonNegative | None = None
    stop_loss_pct: Percent | None = None
    rationale: str = ""
    latency_ms: NonNegative = Decimal(0)
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    cost: NonNegative | None = Decimal(0)
    cached: bool = False

    @model_validator(mode="after")
    def _check(self):
        if len(self.rationale) > 500:
            raise FieldProblem("rationale", self.rationale[:40] + "...", "longer than 500 characters")
        for name in ("prompt_tokens", "completion_tokens"):
            count = getattr(self, name)
            if count is not None and count < 0:
                raise FieldProblem(name, count, "token counts must be >= 0")
        return self

    @classmethod
    def _aggregate_class(cls):
        return Decision

    def apply(self, decision: Decision) -> None:
        decision.action = self.action
        decision.size_pct = self.size_pct
        decision.failed = False
        decision.verdict = None


class DecisionFailed(StartingEvent):
    """The strategy could not decide; the loop holds instead."""

    strategy: str
    model: str | None = None
    prompt_hash: str | None = None
    product: str
    candle_start: UtcDatetime
    kind: FailureKind
    detail: str
    fallback_action: TradeActionKind = TradeActionKind.HOLD
    latency_ms: NonNegative = Decimal(0)

    @classmethod
    def _aggregate_class(cls):
        return Decision

    def apply(self, decision: Decision) -> None:
        decision.action = self.fallback_action
        decision.size_pct = Decimal(0)
        decision.failed = True
        decision.verdict = None


class RiskAssessed(DomainEvent):
    """The risk verdict on a decision: approved or not, the rule, the numbers."""

    approved: bool
    rule: str
    requested_size_pct: Percent
    approved_size_pct: Percent
    message: str
    numbers: dict[str, Money] = {}

    def apply(self, decision: Decision) -> None:
        decision.verdict = self


class AlreadyAssessed(DomainError):
    """A decision gets one risk verdict."""


class Decision(Aggregate):
    action: TradeActionKind
    size_pct: Decimal
    failed: bool
    verdict: RiskAssessed | None

    @classmethod
    def make(cls, decision_id: uuid.UUID, meta: EventMeta, **fields: Any) -> Decision:
        return cls._start(DecisionMade.build(decision_id, 1, meta, **fields))

    @classmethod
    def fail(cls, decision_id: uuid.UUID, meta: EventMeta, **fields: Any) -> Decision:
        return cls._start(DecisionFailed.build(decision_id, 1, meta, **fields))

    @classmethod
    def of(cls, decision_id: uuid.UUID, meta: EventMeta, decided: StrategyDecision, product: str,
           candle_start: Any, inputs: dict[str, Any]) -> Decision:
        """The decision a strategy's answer records: ``DecisionFailed`` (and its HOLD) when it failed, else
        ``DecisionMade`` with the action (the strategy's floats as exact Decimals via their repr)."""
        if decided.failure_kind:
            return cls.fail(
                decision_id, meta, kind=FailureKind(decided.failure_kind),
                detail=decided.failure_detail or decided.action.rationale, strategy=decided.strategy,
                model=decided.model, prompt_hash=decided.prompt_hash, product=product, candle_start=candle_start,
                latency_ms=decided.latency_ms,
            )
        a = decided.action
        return cls.make(
            decision_id, meta, inputs=inputs, action=a.action, size_pct=_exact(a.size_pct),
            take_profit_pct=_exact(a.take_profit_pct), stop_loss_pct=_exact(a.stop_loss_pct), rationale=a.rationale,
            prompt_tokens=decided.prompt_tokens, completion_tokens=decided.completion_tokens, cost=decided.cost,
            cached=decided.cached, strategy=decided.strategy, model=decided.model, prompt_hash=decided.prompt_hash,
            product=product, candle_start=candle_start, latency_ms=decided.latency_ms,
        )

    def assess(
        self,
        meta: EventMeta,
        *,
        approved: bool,
        rule: str,
        requested_size_pct: Decimal,
        approved_size_pct: Decimal,
        message: str,
        numbers: dict[str, Decimal] | None = None,
    ) -> None:
        if self.verdict is not None:
            raise AlreadyAssessed(f"decision {self.id} was already assessed by rule {self.verdict.rule}")
        if approved_size_pct > requested_size_pct:
            raise FieldProblem("approved_size_pct", approved_size_pct, f"exceeds the requested {requested_size_pct}")
        self._trigger(
            RiskAssessed,
            meta,
            approved=approved,
            rule=rule,
            requested_size_pct=requested_size_pct,
            approved_size_pct=approved_size_pct,
            message=message,
            numbers=numbers or {},
        )


def _exact(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))
