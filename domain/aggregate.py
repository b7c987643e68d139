"""A small aggregate base for pydantic events, compatible with eventsourcing's
repository (which replays a stream by calling ``event.mutate(aggregate)``).

Commands are public methods that decide (validate, compute) and then call
``_trigger``, which builds the next event and applies it; ``apply`` only
mutates, so replaying the stream rebuilds the same state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from domain.events import DomainError, DomainEvent, EventMeta

A = TypeVar("A", bound="Aggregate")


class Aggregate:
    """State rebuilt from one event stream; holds the events not yet saved."""

    def __init__(self, aggregate_id: uuid.UUID, version: int, created_on: datetime):
        self.id = aggregate_id
        self.version = version
        self.created_on = created_on
        self.modified_on = created_on
        self._pending: list[DomainEvent] = []

    @classmethod
    def _start(cls: type[A], event: DomainEvent) -> A:
        if event.originator_version != 1:
            raise DomainError(f"{type(event).__name__} must start a stream at version 1")
        aggregate = event.mutate(None)
        if not isinstance(aggregate, cls):
            raise DomainError(f"{type(event).__name__} does not start a {cls.__name__}")
        aggregate._pending.append(event)
        return aggregate

    def _trigger(self, event_class: type[DomainEvent], meta: EventMeta, **fields: Any) -> DomainEvent:
        event = event_class.build(self.id, self.version + 1, meta, **fields)
        event.mutate(self)
        self._pending.append(event)
        return event

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the new events (eventsourcing's save() calls this)."""
        events, self._pending = self._pending, []
        return events


class StartingEvent(DomainEvent):
    """An event that begins a stream: replay constructs the aggregate from it."""

    abstract: ClassVar[bool] = True

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is not None:
            raise DomainError(f"{type(self).__name__} can only start a stream")
        cls = self._aggregate_class()
        new = cls.__new__(cls)
        Aggregate.__init__(new, self.originator_id, self.originator_version, self.occurred_at)
        self.apply(new)
        return new

    @classmethod
    def _aggregate_class(cls) -> type[Aggregate]:
        raise NotImplementedError
