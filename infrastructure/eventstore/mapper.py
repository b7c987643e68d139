"""A lean mapper between pydantic events and eventsourcing's StoredEvent.

The stored state is the event's JSON as pydantic's Rust serializer writes it
(Decimals as strings, times as ISO-8601 UTC). No transcoder registry, no
per-field Python work on the way out; decoding is one validate_json per event.
Old schemas upcast through ``upcast_vN_vN+1`` class methods when an event's
``class_version`` is above 1, and moved classes resolve through
``eventsourcing.utils.register_topic``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from domain.events import DomainEvent


class NoTranscoder:
    """Placeholder for the Mapper's transcoder slot: this mapper never uses one."""

    def encode(self, obj: Any) -> bytes:  # pragma: no cover - never called
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


@lru_cache(maxsize=None)
def _topic(cls: type) -> str:
    return get_topic(cls)


@lru_cache(maxsize=None)
def event_class(topic: str) -> type[DomainEvent]:
    """Resolve a stored topic to its event class (registered aliases included)."""
    cls = resolve_topic(topic)
    if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
        raise MapperDeserialisationError(f"topic {topic!r} is not a tradecore event class")
    return cls


def encode_event(event: DomainEvent) -> bytes:
    state = event.__pydantic_serializer__.to_json(event)
    version = type(event).class_version
    if version > 1:
        state = b'{"class_version":%d,' % version + state[1:]
    return state


def decode_event(topic: str, state: bytes) -> DomainEvent:
    """Decode one stored event, upcasting an older schema when needed."""
    cls = event_class(topic)
    try:
        if cls.class_version == 1 and b'"class_version"' not in state[:20]:
            return cls.__pydantic_validator__.validate_json(state)
        data = json.loads(state)
        from_version = data.pop("class_version", 1)
        while from_version < cls.class_version:
            data = getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(data)
            from_version += 1
        return cls.__pydantic_validator__.validate_python(data)
    except MapperDeserialisationError:
        raise
    except Exception as exc:
        raise MapperDeserialisationError(f"cannot decode a stored {topic} event: {exc}") from exc


class EventMapper(Mapper):
    """eventsourcing Mapper for tradecore's pydantic events."""

    def __init__(self) -> None:
        super().__init__(transcoder=NoTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=_topic(type(domain_event)),
            state=encode_event(domain_event),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(stored_event.topic, stored_event.state)
