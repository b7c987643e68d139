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
import types
import typing
import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Callable

import orjson
from pydantic import AwareDatetime

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


# --- the fast decoder -----------------------------------------------------
# Stored events were validated when they were made, and the hash chain guards
# them since; like eventsourcing's own mapper, decoding converts types without
# validating again. Each class gets a list of per-field converters built once
# from its annotations; a class with a field this cannot convert falls back to
# pydantic validation.

_UUID_NEW = object.__new__
_SET = object.__setattr__


def _fast_uuid(text: str) -> uuid.UUID:
    value = _UUID_NEW(uuid.UUID)
    _SET(value, "int", int(text.replace("-", ""), 16))
    _SET(value, "is_safe", uuid.SafeUUID.unknown)
    return value


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else convert(v)


def _converter(annotation: Any) -> Callable[[Any], Any] | None | bool:
    """A converter for one annotation; None = keep as is; False = unsupported."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _converter(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None if all(a in (str, int, float, bool) for a in args) else False
        inner = _converter(args[0])
        return inner if inner in (None, False) else _optional(inner)
    if annotation is Decimal:
        return Decimal
    if annotation is datetime or annotation is AwareDatetime:
        return datetime.fromisoformat
    if annotation is uuid.UUID:
        return _fast_uuid
    if annotation in (str, int, bool):
        return None
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        members = annotation._value2member_map_
        return members.__getitem__
    if origin is dict:
        key, value = typing.get_args(annotation)
        inner = _converter(value)
        if key is not str or inner is False:
            return False
        if inner is None:
            return dict
        return lambda d: {k: inner(v) for k, v in d.items()}
    return False


@lru_cache(maxsize=None)
def _fast_decoder(cls: type[DomainEvent]) -> Callable[[bytes], DomainEvent] | None:
    required, optional = [], []
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if info.metadata:
            annotation = typing.Annotated[(annotation, *info.metadata)]
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)] if origin in (typing.Union, types.UnionType) else []
        if len(args) == 1:  # X | None: convert X when present
            convert = _converter(args[0])
            target = optional
        else:
            convert = _converter(annotation)
            target = required
        if convert is False:
            return None
        if convert is not None:
            target.append((name, convert))
    field_count = len(cls.model_fields)
    fields_set = set(cls.model_fields)  # every field is always stored; frozen models never change it
    new = object.__new__
    loads = orjson.loads

    def decode(state: bytes) -> DomainEvent:
        data = loads(state)
        if len(data) != field_count:
            return cls.__pydantic_validator__.validate_python(data)
        for name, convert in required:
            data[name] = convert(data[name])
        for name, convert in optional:
            value = data[name]
            if value is not None:
                data[name] = convert(value)
        event = new(cls)
        _SET(event, "__dict__", data)
        _SET(event, "__pydantic_fields_set__", fields_set)
        _SET(event, "__pydantic_extra__", None)
        _SET(event, "__pydantic_private__", None)
        return event

    return decode


@lru_cache(maxsize=None)
def _topic_decoder(topic: str) -> Callable[[bytes], DomainEvent]:
    """The whole decode of one topic, resolved once: fast path, validation, or upcasting."""
    cls = event_class(topic)
    fast = _fast_decoder(cls) if cls.class_version == 1 else None
    validate_json = cls.__pydantic_validator__.validate_json

    def decode(state: bytes) -> DomainEvent:
        if fast is not None:
            return fast(state)
        if cls.class_version == 1:
            return validate_json(state)
        data = json.loads(state)
        from_version = data.pop("class_version", 1)
        while from_version < cls.class_version:
            data = getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(data)
            from_version += 1
        return cls.__pydantic_validator__.validate_python(data)

    return decode


def decode_event(topic: str, state: bytes) -> DomainEvent:
    """Decode one stored event, upcasting an older schema when needed."""
    try:
        return _topic_decoder(topic)(state)
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

    @staticmethod
    def decode(topic: str, state: bytes) -> DomainEvent:
        """Decode a (topic, state) pair read straight from the log."""
        return decode_event(topic, state)
