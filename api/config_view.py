"""How configuration values are shown to people, the same in the CLI and the REST API.

Secrets are never shown: a setting that holds one is displayed as ``set``/``unset`` (its
fingerprint removed), and a path that merely sounds like a secret has its value masked in
refusals. Used by ``tradecore config ...`` (api/cli/config.py), ``tradecore replay
--what-if`` (api/cli/replay.py) and the REST config routes (api/http/routes/config.py).
"""

from __future__ import annotations

from typing import Any

from api.bootstrap import configuration
from application.operations.config_service import DriftItem, secret_display

__all__ = ["ABSENT", "drift_row", "is_secret_path", "masked_secret", "shown_value", "sounds_secret"]

# How a setting with no value (absent from the baseline or from the current configuration) is shown.
ABSENT = "(absent)"

def is_secret_path(path: str) -> bool:
    """Whether a dotted path names a secret (API keys, the API token list, the alert webhook)."""
    return configuration().is_secret_path(path)


def sounds_secret(path: str) -> bool:
    """Whether a path (known or not, e.g. a typo) sounds like a secret's: its value is not echoed back."""
    return configuration().sounds_secret(path)


def masked_secret(path: str, value: str | None) -> str | None:
    """A canonical value for output: a secret's only as set/unset; None stays None."""
    return secret_display(value) if value is not None and is_secret_path(path) else value


def shown_value(path: str, value: str | None) -> str:
    """A canonical value for output: secrets only as set/unset, a missing value as ``(absent)``."""
    if value is None:
        return ABSENT
    return masked_secret(path, value)


def drift_row(item: DriftItem) -> dict[str, Any]:
    """One drifted setting as a plain row (CLI ``config drift --json`` and ``GET /config/drift``).

    Secrets show only set/unset; a rotated secret (same shape, new fingerprint) says ``(rotated)``.
    ``occurred_at`` is ISO 8601, or None for a difference from outside the log.
    """
    baseline, current = shown_value(item.path, item.baseline), shown_value(item.path, item.current)
    secret = is_secret_path(item.path)
    if secret and baseline == current:  # a rotated key: same shape, different fingerprint
        current = f"{current} (rotated)"
    return {
        "path": item.path,
        "baseline": None if item.baseline is None else baseline,
        "current": None if item.current is None else current,
        "actor": item.actor,
        "occurred_at": item.occurred_at.isoformat() if item.occurred_at else None,
        "reason": item.reason,
        "secret": secret,
    }
