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

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

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

# Native pydantic Decimal checks run in Rust: about four times faster than a
# Python validator per field, which decides how fast events can be made.
Money = Annotated[Decimal, Field(allow_inf_nan=False)]
"""Any finite decimal (P&L, balances, differences)."""
Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
"""A finite decimal > 0 (prices, order quantities)."""
NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
"""A finite decimal >= 0 (fees, volumes)."""
Percent = Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]
"""A finite decimal in 0..100."""


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


# pydantic parses and checks awareness natively (and serialises natively, three
# times faster than a Python serializer); only the UTC normalisation is ours.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
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


EVENT_MODULES = ("domain.market", "domain.decision", "domain.order", "domain.account", "domain.config",
                 "domain.control", "domain.alerts", "domain.product")
"""Every module that defines events (imported on demand, so the catalogue is always whole)."""


def event_classes() -> dict[str, type[DomainEvent]]:
    """Every concrete event class, by name (the catalogue)."""
    import importlib

    for module in EVENT_MODULES:
        importlib.import_module(module)
    return dict(_registry)


class DomainEvent(BaseModel):
    """Base of all events: immutable, validated, versioned (``class_version``)."""

    # defer_build: an event class's validator and serializer are built when first used, not at import (a
    # command that makes or reads a few kinds of event does not build all 33); fields and checks are the same.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False, defer_build=True)

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

    @classmethod
    def build(cls, originator_id: uuid.UUID, originator_version: int, meta: EventMeta, **fields: Any):
        """Construct (and validate) the event at a stream position with the command's envelope."""
        fields["originator_id"] = originator_id
        fields["originator_version"] = originator_version
        fields["occurred_at"] = meta.occurred_at
        fields["actor"] = meta.actor
        fields["correlation_id"] = meta.correlation_id
        fields["causation_id"] = meta.causation_id
        fields["run_id"] = meta.run_id
        try:
            return cls.__pydantic_validator__.validate_python(fields)
        except ValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

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
        if error.get("type") == "timezone_aware":
            message = "naive datetime (a UTC timezone is required)"
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append((field, error.get("input"), message))
    return EventValidationError(event_name, problems)
