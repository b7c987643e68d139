"""Events of one kind as columns: validated per column, each value written as the event's own JSON writes it.

A ``ColumnBatch`` holds many events of one class whose fields vary only in a few columns (a backtest's HOLD
decisions, an import's new candles). Before anything of it is stored, ``json_columns`` validates every
varying column with the types of the event's own fields (pydantic, one call per column; the event's
cross-field checks once per row) and gives each value's JSON; one bad value anywhere refuses the whole
batch with an ``EventValidationError`` naming the field, the row and the value. ``event(k)`` is row ``k``
as the one validated model the ordinary path makes, and ``probe()`` a one-row batch of sentinel values, so
the store can derive, and check, how it writes the batch (application/stored_rows.py).
"""

from __future__ import annotations

import typing
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from domain.events import DomainEvent, EventValidationError

__all__ = ["ColumnBatch", "field_type", "ids_json", "split_listed", "strings_json", "times_json", "uuids_json",
           "validated_json"]


class ColumnBatch:
    """Events of one class as columns (see the module's docstring); subclasses fill in the columns."""

    ids: list[int]  # the stream ids as 128-bit integers, one per row
    version: int = 1  # every row's position in its stream: 1 starts it (a decision's risk verdict is its 2)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def template_key(self) -> tuple:
        """What the stored form depends on besides the varying columns (the class and the constant fields)."""
        raise NotImplementedError

    @property
    def merge_key(self) -> tuple:
        """Batches with equal keys can be encoded as one (``merged``): the same template and columns."""
        return self.template_key

    @classmethod
    def merged(cls, batches: list) -> ColumnBatch:
        """One batch of the rows of ``batches`` (equal ``merge_key``s), in order."""
        raise NotImplementedError

    def probe(self) -> tuple[ColumnBatch, dict[str, bytes]]:
        """A one-row batch like this one whose varying fields hold sentinels, and each sentinel's JSON."""
        raise NotImplementedError

    def json_columns(self) -> dict[str, list[bytes]]:
        """Each varying column validated, as the JSON of each value (keys as ``probe`` names them)."""
        raise NotImplementedError

    def event(self, k: int) -> DomainEvent:
        """Row ``k`` as the validated event the one-at-a-time path makes."""
        raise NotImplementedError

    def events(self) -> list[DomainEvent]:
        return [self.event(k) for k in range(len(self))]


def field_type(cls: type[DomainEvent], name: str) -> Any:
    """The annotation of one field of an event class, with its constraints."""
    info = cls.model_fields[name]
    return typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def validated_json(adapter: TypeAdapter, values: list, field: str, event_name: str) -> bytes:
    """``values`` validated by ``adapter`` (a list type) and written as a JSON list; an EventValidationError
    naming the field, the row and the value when one is bad."""
    try:
        valid = adapter.validate_python(values, strict=False)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        row = error["loc"][0] if error.get("loc") else "?"
        message = error.get("msg", "invalid")
        if error.get("type") == "timezone_aware":
            message = "naive datetime (a UTC timezone is required)"
        raise EventValidationError(event_name, [(f"{field} (row {row})", error.get("input"), message)]) from None
    return adapter.dump_json(valid)


_UTC_TIMES = TypeAdapter(list[datetime])
_tzinfo = attrgetter("tzinfo")


def times_json(values: list, field: str, adapter: TypeAdapter, event_name: str) -> list[bytes]:
    """A column of UTC times (``adapter``: the list of the field's type) as JSON, one value each."""
    # datetimes in UTC already are what the field's validation gives back: written as they are
    if set(map(type, values)) <= {datetime} and set(map(_tzinfo, values)) <= {timezone.utc}:
        return split_listed(_UTC_TIMES.dump_json(values))
    return split_listed(validated_json(adapter, values, field, event_name))


def split_listed(listed: bytes) -> list[bytes]:
    """The values of a JSON list of numbers, booleans, nulls, decimals or ISO times (none holds a comma)."""
    inner = listed[1:-1]
    return inner.split(b",") if inner else []


def strings_json(texts: list[str], adapter: TypeAdapter) -> list[bytes]:
    """Each text as JSON (``adapter``: the field's type, for texts that need escapes)."""
    if not texts:
        return []
    body = "".join(texts)
    if body.isascii() and body.isprintable() and '"' not in body and "\\" not in body:
        # printable ASCII without quotes or backslashes is written as it is, between quotes
        return ('"' + '"\x00"'.join(texts) + '"').encode().split(b"\x00")
    return [adapter.dump_json(text) for text in texts]


def ids_json(ids: list[int], event_name: str) -> list[bytes]:
    """The stream ids (128-bit integers) checked and written as ``uuids_json`` writes them; an EventValidationError
    naming the row and the value of the first that is not one."""
    if ids and (set(map(type, ids)) != {int} or min(ids) < 0 or max(ids) >= 1 << 128):
        k = next(k for k, n in enumerate(ids) if type(n) is not int or not 0 <= n < 1 << 128)
        raise EventValidationError(event_name, [(f"originator_id (row {k})", ids[k], "not a 128-bit UUID")])
    return uuids_json(ids)


def uuids_json(ids: list[int]) -> list[bytes]:
    """Each id as its JSON text (a quoted 8-4-4-4-12 UUID), built for the whole column at once."""
    if not ids:
        return []
    digits = np.frombuffer((("%032x" * len(ids)) % tuple(ids)).encode(), dtype="S1").reshape(-1, 32)
    out = np.empty((len(ids), 38), dtype="S1")
    out[:, [0, 37]] = b'"'
    out[:, [9, 14, 19, 24]] = b"-"
    for into, frm, width in ((1, 0, 8), (10, 8, 4), (15, 12, 4), (20, 16, 4), (25, 20, 12)):
        out[:, into:into + width] = digits[:, frm:frm + width]
    return out.view("S38").ravel().tolist()
