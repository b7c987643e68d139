"""JSON for the API: decimals as plain strings, times as ISO-8601 UTC with a Z, rendered by orjson."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response

from api.presentation import plain_number


def money(value: Any) -> str | None:
    """A Decimal as a plain string without exponent or trailing zeros (None stays None)."""
    if value is None:
        return None
    return plain_number(value if isinstance(value, (Decimal, int, float)) else Decimal(str(value)))


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return money(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(document: Any) -> bytes:
    """The document as JSON bytes (datetimes in UTC with Z; naive ones are taken as UTC)."""
    return orjson.dumps(document, default=_default, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


class JsonBytes(Response):
    """A JSON response whose body is already rendered (the cache keeps rendered bodies)."""

    media_type = "application/json"

    def __init__(self, content: bytes, status_code: int = 200, headers: dict | None = None):
        super().__init__(content=content, status_code=status_code, headers=headers)


def json_response(document: Any, status_code: int = 200, headers: dict | None = None) -> JsonBytes:
    return JsonBytes(dumps(document), status_code, headers)


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO-8601 UTC with a Z."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
