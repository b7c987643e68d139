"""The effective configuration as data: what `config show`, ``ConfigChanged``, drift and the config hash see.

Secrets appear only as whether one is set and its fingerprint; decimals as canonical strings;
a password inside a URL as ``****``. Split from loading.py, which re-exports these functions (and whose
``Settings`` answers them as methods); they read any settings model, so this module needs nothing of loading.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretStr

from infrastructure.settings.sections import is_secret_field, secret_fingerprint

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return {"set": True, "fingerprint": secret_fingerprint(value)}
    if isinstance(value, BaseModel):
        return {name: _field_value(type(value), name, getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Decimal):
        return _canonical_decimal(value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):  # keyed tables: llm.prices, products
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1****@", value)
    return value


def _field_value(model: type[BaseModel], name: str, value: Any) -> Any:
    if value is None and is_secret_field(model, name):
        return {"set": False, "fingerprint": None}
    return _plain(value)


def _canonical_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def effective_config(settings: BaseModel) -> dict[str, Any]:
    """Every setting as JSON-able data; secrets become {"set": bool, "fingerprint": hex12 | None}.

    Decimals are canonical strings ("25", "0.1"), paths are POSIX strings, and a password inside
    a URL is replaced by ``****``.
    """
    return _plain(settings)


def config_hash(settings: BaseModel) -> str:
    """sha256 of the canonical JSON of ``effective_config``: equal hashes mean equal behaviour."""
    canonical = json.dumps(effective_config(settings), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def flatten_config(settings: BaseModel) -> dict[str, str]:
    """Dotted path -> canonical string, for ConfigChanged events and drift views.

    Secrets read ``set:<fingerprint>`` or ``unset``; booleans ``true``/``false``; None ``null``;
    lists (api tokens) canonical JSON with their secrets already replaced.
    """
    flat: dict[str, str] = {}
    for section, fields in effective_config(settings).items():
        for name, value in fields.items():
            flat[f"{section}.{name}"] = _canonical_text(value)
    return flat


def _canonical_text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"set", "fingerprint"}:
        return f"set:{value['fingerprint']}" if value["set"] else "unset"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return json.dumps(_secrets_as_text(value), sort_keys=True, separators=(",", ":"))
    return json.dumps(value)


def _secrets_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"set", "fingerprint"}:
            return _canonical_text(value)
        return {k: _secrets_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secrets_as_text(v) for v in value]
    return value
