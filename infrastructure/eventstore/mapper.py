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
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Callable

import orjson
from pydantic import AwareDatetime, BaseModel

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from domain.events import DomainEvent
from domain.ids import uuid_from_int


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

_SET = object.__setattr__
_UUID = uuid.UUID
_SAFE_UNKNOWN = uuid.SafeUUID.unknown  # an enum member lookup costs as much as the rest

# Decimal(text) looks up the thread's context and parses its arguments on every call; create_decimal of a
# context with the widest precision and exponents converts the same text to the same digits, exponent
# and sign at half the cost. Every signal traps (a rounding, an exponent out of range, text the
# constructor reads but create_decimal does not, such as "1_000" or " 1"): the decoder then decodes the
# event again with Decimal itself, so a stored value always decodes to what Decimal(text) gives.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, clamp=0,
                 traps=list(Context().flags))  # every signal
_exact_decimal = _EXACT.create_decimal


# A UUID's text is read as one hexadecimal int with its dashes made underscores (int() reads an underscore
# between two digits): a replace that keeps the length copies the text once, where dropping the dashes
# counts them and joins the pieces (~1,300 instructions against ~400). A dash that is not between two
# digits (leading, trailing, doubled) is refused rather than dropped.
def _fast_uuid(text: str) -> uuid.UUID:
    return uuid_from_int(int(text.replace("-", "_"), 16))


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
    return _compile_decoder(cls, required, optional)


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    slot = BaseModel.__dict__.get(name)
    if slot is not None and hasattr(slot, "__set__"):
        return slot.__set__
    return lambda obj, value: _SET(obj, name, value)


def _uuid_slot_setter(name: str) -> Callable[[Any, Any], None]:
    slot = _UUID.__dict__.get(name)
    if slot is not None and hasattr(slot, "__set__"):
        return slot.__set__
    return lambda obj, value: _SET(obj, name, value)


def _compile_decoder(cls: type[DomainEvent], required: list, optional: list) -> Callable[[bytes], DomainEvent]:
    """The decoder of one class as straight-line code: one statement per converted field, no loop.

    Two versions of the same source: the one returned converts decimals with ``_exact_decimal`` and, on
    any exception, decodes the state again with the reference version (``Decimal`` itself), which
    returns the same event or raises what decoding this state raises."""
    reference = _compile_source(cls, required, optional, Decimal, None)
    return _compile_source(cls, required, optional, _exact_decimal, reference)


def _compile_source(cls: type[DomainEvent], required: list, optional: list, decimal: Callable[[str], Decimal],
                    reference: Callable[[bytes], DomainEvent] | None) -> Callable[[bytes], DomainEvent]:
    field_count = len(cls.model_fields)
    fields_set = set(cls.model_fields)  # every field is always stored; frozen models never change it
    namespace: dict[str, Any] = {
        "loads": orjson.loads, "new": object.__new__, "_SET": _SET, "cls": cls, "fields_set": fields_set,
        # BaseModel's slots and its __dict__, set through their descriptors (object.__setattr__ looks each up
        # in the class's MRO first: ~1,500 instructions a call against ~850)
        "set_dict": _slot_setter("__dict__"),
        "set_fields_set": _slot_setter("__pydantic_fields_set__"),
        "set_extra": _slot_setter("__pydantic_extra__"),
        "set_private": _slot_setter("__pydantic_private__"),
        "reference": reference,
    }
    lines = [
        "    data = loads(state)",
        f"    if len(data) != {field_count}:",
        "        return cls.__pydantic_validator__.validate_python(data)",  # not this schema: validate
    ]
    # UUID's slots set through their descriptors (UUID.__setattr__ refuses; object.__setattr__ is slower)
    namespace.update(UUID=_UUID, SAFE=_SAFE_UNKNOWN, int=int, set_int=_uuid_slot_setter("int"),
                     set_safe=_uuid_slot_setter("is_safe"))
    # The fields are looked up by the very key objects orjson's key cache puts in each parsed dict (cells of the
    # decoder, k0, k1, ...): a lookup then ends at the identity check instead of comparing equal strings.
    # Should the cache ever hold other objects for these keys, the lookups compare strings, as they did.
    keys = {key: key for key in orjson.loads(orjson.dumps(dict.fromkeys(cls.model_fields)))}
    cells = {name: f"k{j}" for j, name in enumerate(keys)}
    for i, (name, convert) in enumerate(required):
        k = cells[name]
        if convert is _fast_uuid:  # inlined: a call frame is a fifth of the conversion
            lines += ["    u = new(UUID)", f"    set_int(u, int(data[{k}].replace('-', '_'), 16))",
                      "    set_safe(u, SAFE)", f"    data[{k}] = u"]
            continue
        namespace[f"c{i}"] = decimal if convert is Decimal else convert
        lines.append(f"    data[{k}] = c{i}(data[{k}])")
    for i, (name, convert) in enumerate(optional):
        k = cells[name]
        lines += [f"    v = data[{k}]", "    if v is not None:"]
        if convert is _fast_uuid:
            lines += ["        u = new(UUID)", "        set_int(u, int(v.replace('-', '_'), 16))",
                      "        set_safe(u, SAFE)", f"        data[{k}] = u"]
            continue
        namespace[f"o{i}"] = decimal if convert is Decimal else convert
        lines.append(f"        data[{k}] = o{i}(v)")
    lines += [
        "    event = new(cls)",
        "    set_dict(event, data)",
        "    set_fields_set(event, fields_set)",
        "    set_extra(event, None)",
        "    set_private(event, None)",
        "    return event",
    ]
    if reference is not None:  # the whole body in a try (free in CPython 3.11 unless something raises)
        lines = ["    try:", *("    " + line for line in lines), "    except Exception:", "        return reference(state)"]
    source = "\n".join([f"def make({', '.join(cells.values())}):", "    def decode(state):",
                        *("    " + line for line in lines), "    return decode"])
    exec(compile(source, f"<decoder of {cls.__name__}>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace["make"](*keys)


@lru_cache(maxsize=None)
def _topic_decoder(topic: str) -> Callable[[bytes], DomainEvent]:
    """The whole decode of one topic, resolved once: fast path, validation, or upcasting."""
    cls = event_class(topic)
    if cls.class_version == 1:
        fast = _fast_decoder(cls)
        return fast if fast is not None else cls.__pydantic_validator__.validate_json

    def upcast(state: bytes) -> DomainEvent:
        data = json.loads(state)
        from_version = data.pop("class_version", 1)
        while from_version < cls.class_version:
            data = getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(data)
            from_version += 1
        return cls.__pydantic_validator__.validate_python(data)

    return upcast


def decode_event(topic: str, state: bytes) -> DomainEvent:
    """Decode one stored event, upcasting an older schema when needed."""
    try:
        return _topic_decoder(topic)(state)
    except MapperDeserialisationError:
        raise
    except Exception as exc:
        raise MapperDeserialisationError(f"cannot decode a stored {topic} event: {exc}") from exc


def decode_rows(rows: Iterable[tuple[int, str, bytes]], make: Callable[[int, str, DomainEvent], Any]) -> list[Any]:
    """Decode a page of (notification id, topic, state) rows into ``make(id, topic, event)`` each.

    The bulk read of the log: each topic's decoder is looked up once per page.
    Any failure decodes the page again one by one, which raises what
    ``decode_event`` raises for the first bad row.
    """
    decoders: dict[str, Callable[[bytes], DomainEvent]] = {}
    out: list[Any] = []
    append = out.append
    try:
        if isinstance(make, type) and issubclass(make, tuple):  # a NamedTuple: skip its Python __new__
            new_tuple = tuple.__new__
            for nid, topic, state in rows:
                decode = decoders.get(topic)
                if decode is None:
                    decode = decoders[topic] = _topic_decoder(topic)
                append(new_tuple(make, (nid, topic, decode(state))))
        else:
            for nid, topic, state in rows:
                decode = decoders.get(topic)
                if decode is None:
                    decode = decoders[topic] = _topic_decoder(topic)
                append(make(nid, topic, decode(state)))
    except Exception:
        return [make(nid, topic, decode_event(topic, state)) for nid, topic, state in rows]
    return out


def iter_decoded(rows: Iterable[tuple[int, str, bytes]], make: Callable[[int, str, DomainEvent], Any]) -> Iterator[Any]:
    """Decode (notification id, topic, state) rows one at a time into ``make(id, topic, event)``, in order.

    The streaming read of the log: each event is decoded whole when it is asked for, so a consumer that
    drops it frees it before the next is made and the cyclic collector's count of new objects stays level
    (a page decoded into a list first is walked by the next collection while it is alive). A row that
    does not decode raises what ``decode_event`` raises for it, after the rows before it were yielded.
    """
    return iter_decoded_pages((rows,), make)


def iter_decoded_pages(pages: Iterable[Iterable[tuple[int, str, bytes]]],
                       make: Callable[[int, str, DomainEvent], Any]) -> Iterator[Any]:
    """``iter_decoded`` over the rows of each page in turn, in one generator (no generator per page), the
    pages closed (when they can be) when the iteration ends, however it ends.

    A page is let go before the next is asked for. The decoder is looked up again only when the topic
    differs from the row before's (a string comparison, not a hash of each row's new topic string)."""
    decoders: dict[str, Callable[[bytes], DomainEvent]] = {}
    new_tuple = tuple.__new__ if isinstance(make, type) and issubclass(make, tuple) else None  # a NamedTuple: skip its __new__
    last_topic: str | None = None
    decode: Any = None  # the first row's topic differs from None: its decoder is looked up there
    try:
        for rows in pages:
            for nid, topic, state in rows:
                if topic != last_topic:
                    decode = decoders.get(topic)
                    if decode is None:
                        decode = decoders[topic] = _topic_decoder(topic)
                    last_topic = topic
                try:
                    event = decode(state)
                except Exception:
                    event = decode_event(topic, state)
                yield new_tuple(make, (nid, topic, event)) if new_tuple is not None else make(nid, topic, event)
            del rows
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


class EventMapper(Mapper):
    """eventsourcing Mapper for tradecore's pydantic events."""

    def __init__(self) -> None:
        super().__init__(transcoder=NoTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls = type(domain_event)
        if cls.class_version == 1:  # encode_event inlined: no version prefix to add
            state = domain_event.__pydantic_serializer__.to_json(domain_event)
        else:
            state = encode_event(domain_event)
        return StoredEvent(domain_event.originator_id, domain_event.originator_version, _topic(cls), state)

    @staticmethod
    def to_row(domain_event: Any) -> tuple[Any, int, str, bytes]:
        """(originator id as stored, version, topic, state): what ``to_stored_event`` gives the SQLite
        recorder, without the intermediate ``StoredEvent``."""
        cls = type(domain_event)
        if cls.class_version == 1:
            state = domain_event.__pydantic_serializer__.to_json(domain_event)
        else:
            state = encode_event(domain_event)
        oid = domain_event.originator_id
        # "%032x" % oid.int is UUID.hex without the property call
        return ("%032x" % oid.int if isinstance(oid, uuid.UUID) else oid), domain_event.originator_version, _topic(cls), state

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(stored_event.topic, stored_event.state)

    @staticmethod
    def decode(topic: str, state: bytes) -> DomainEvent:
        """Decode a (topic, state) pair read straight from the log."""
        return decode_event(topic, state)

    @staticmethod
    def decode_rows(rows: Iterable[tuple[int, str, bytes]], make: Callable[[int, str, DomainEvent], Any]) -> list[Any]:
        """Decode a page of (notification id, topic, state) rows (see ``decode_rows``)."""
        return decode_rows(rows, make)

    @staticmethod
    def iter_decoded(rows: Iterable[tuple[int, str, bytes]], make: Callable[[int, str, DomainEvent], Any]) -> Iterator[Any]:
        """Decode rows one at a time as they are asked for (see ``iter_decoded``)."""
        return iter_decoded(rows, make)

    @staticmethod
    def iter_decoded_pages(pages: Iterable[Iterable[tuple[int, str, bytes]]],
                           make: Callable[[int, str, DomainEvent], Any]) -> Iterator[Any]:
        """Decode the rows of page after page as they are asked for (see ``iter_decoded_pages``)."""
        return iter_decoded_pages(pages, make)
