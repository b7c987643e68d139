"""The base of every event in the log, and the value types events are made of.

Events are frozen pydantic models that validate at construction: a bad value
is refused with an error naming the field and the value, before anything is
written. Money, prices, quantities and fees are ``Decimal``; times are
timezone-aware UTC. The domain reads no clock: ``occurred_at`` is passed in.

Every event carries the envelope the auditor reads: ``occurred_at`` (domain
time), ``actor``, ``correlation_id``, ``causation_id``, ``run_id``; its
``event_id`` is derived from its stream position, so replays reproduce it.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError

__all__ = [
    "DomainError",
    "DomainEvent",
    "EventMeta",
    "EventValidationError",
    "FieldProblem",
    "Money",
    "NonNegative",
    "Percent",
    "Positive",
    "UtcDatetime",
    "EVENT_NAMESPACE",
    "event_classes",
]

EVENT_NAMESPACE = uuid.UUID("6f2d3c0e-7a55-4b8e-9f0b-3f6f2a8c1d10")


class DomainError(Exception):
    """A domain rule was broken (illegal transition, conflicting fact)."""


class FieldProblem(ValueError):
    """Raised by cross-field checks so the refusal names the field and value."""

    def __init__(self, field: str, value: Any, why: str):
        self.field, self.value, self.why = field, value, why
        super().__init__(f"{field}={value!r}: {why}")


class EventValidationError(DomainError, ValueError):
    """An event was refused at construction; names each bad field and value."""

    def __init__(self, event_name: str, problems: list[tuple[str, Any, str]]):
        self.event_name = event_name
        self.problems = problems
        parts = [f"{field}={value!r}: {why}" for field, value, why in problems]
        super().__init__(f"{event_name} refused: " + "; ".join(parts))


# --- value types -----------------------------------------------------------
# Validators are plain Python functions: pydantic's own Decimal validator costs
# about 0.5 us per field, which decides the decode rate of the whole log.


def _decimal(value: Any) -> Decimal:
    if type(value) is Decimal:
        if value.is_finite():
            return value
        raise ValueError(f"not a finite number: {value!r}")
    if type(value) is str:
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        result = Decimal(repr(value))
    else:
        raise ValueError(f"not a decimal number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def _positive(value: Any) -> Decimal:
    result = _decimal(value)
    if result <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return result


def _non_negative(value: Any) -> Decimal:
    result = _decimal(value)
    if result < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return result


def _percent(value: Any) -> Decimal:
    result = _decimal(value)
    if result < 0 or result > 100:
        raise ValueError(f"must be between 0 and 100, got {value!r}")
    return result


def _utc(value: Any) -> datetime:
    if type(value) is datetime and value.tzinfo is timezone.utc:
        return value
    if type(value) is str:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"not a datetime: {value!r}")
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value.isoformat()} (a UTC timezone is required)")
    if offset != timedelta(0) or value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


_dec_ser = PlainSerializer(str, return_type=str, when_used="json")
Money = Annotated[Decimal, PlainValidator(_decimal), _dec_ser]
"""Any finite decimal (P&L, balances, differences)."""
Positive = Annotated[Decimal, PlainValidator(_positive), _dec_ser]
"""A finite decimal > 0 (prices, order quantities)."""
NonNegative = Annotated[Decimal, PlainValidator(_non_negative), _dec_ser]
"""A finite decimal >= 0 (fees, volumes)."""
Percent = Annotated[Decimal, PlainValidator(_percent), _dec_ser]
"""A finite decimal in 0..100."""
UtcDatetime = Annotated[
    datetime, PlainValidator(_utc), PlainSerializer(_iso, return_type=str, when_used="json")
]
"""A timezone-aware datetime, normalised to UTC; naive ones are refused."""


@dataclass(frozen=True)
class EventMeta:
    """The envelope a command passes down: when, who, and what it belongs to."""

    occurred_at: datetime
    actor: str = "system"
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None

    def envelope(self) -> dict[str, Any]:
        return {
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "run_id": self.run_id,
        }


_registry: dict[str, type[DomainEvent]] = {}


def event_classes() -> dict[str, type[DomainEvent]]:
    """Every concrete event class, by name (the catalogue)."""
    return dict(_registry)


class DomainEvent(BaseModel):
    """Base of all events: immutable, validated, versioned (``class_version``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)

    class_version: ClassVar[int] = 1

    originator_id: uuid.UUID
    originator_version: int
    occurred_at: UtcDatetime
    actor: str = "system"
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and not cls.__dict__.get("abstract", False):
            _registry[cls.__name__] = cls

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _refusal(type(self).__name__, exc) from None

    @classmethod
    def build(cls, originator_id: uuid.UUID, originator_version: int, meta: EventMeta, **fields: Any):
        """Construct the event at a stream position with the command's envelope."""
        return cls(
            originator_id=originator_id,
            originator_version=originator_version,
            **meta.envelope(),
            **fields,
        )

    @property
    def event_id(self) -> uuid.UUID:
        """Deterministic id of this event: its stream and position."""
        return uuid.uuid5(EVENT_NAMESPACE, f"{self.originator_id}:{self.originator_version}")

    @property
    def timestamp(self) -> datetime:
        # eventsourcing's aggregate protocol calls it timestamp.
        return self.occurred_at

    @property
    def event_type(self) -> str:
        return type(self).__name__

    def payload(self) -> dict[str, Any]:
        """The event's own fields (without the envelope), JSON-ready."""
        data = self.model_dump(mode="json")
        for key in _ENVELOPE_FIELDS:
            data.pop(key, None)
        return data

    def apply(self, aggregate: Any) -> None:
        """Evolve the aggregate's state; overridden by aggregate events."""

    def mutate(self, aggregate: Any) -> Any:
        """eventsourcing's replay hook: check the position, then apply."""
        if aggregate is None:
            raise DomainError(f"{type(self).__name__} cannot start a stream")
        if self.originator_version != aggregate.version + 1:
            raise DomainError(
                f"{type(self).__name__} at version {self.originator_version} "
                f"does not follow version {aggregate.version} of {aggregate.id}"
            )
        self.apply(aggregate)
        aggregate.version = self.originator_version
        aggregate.modified_on = self.occurred_at
        return aggregate


_ENVELOPE_FIELDS = (
    "originator_id",
    "originator_version",
    "occurred_at",
    "actor",
    "correlation_id",
    "causation_id",
    "run_id",
)


def _refusal(event_name: str, exc: ValidationError) -> EventValidationError:
    problems = []
    for error in exc.errors(include_url=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem):
            problems.append((cause.field, cause.value, cause.why))
            continue
        field = ".".join(str(part) for part in error.get("loc", ())) or "(event)"
        message = error.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append((field, error.get("input"), message))
    return EventValidationError(event_name, problems)
