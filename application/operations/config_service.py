"""Configuration use cases over the config ledger: recorded changes, baselines and drift.

The effective configuration is, lowest to highest: defaults < TOML file < environment < changes
recorded in the log with ``tradecore config set`` < command-line flags. This module owns the part
that comes from the log; loading and validating settings stays in the caller (``api/``), which
passes flat views in: dotted path -> canonical string, secrets as ``set:<fingerprint>``/``unset``.

Nothing here reads the environment, a file or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from application.trading_app import TradingApplication
from domain.config import CONFIG_LEDGER_ID, ConfigBaselineSet, ConfigChanged
from domain.events import DomainEvent

# Who a difference is attributed to when no recorded change explains it: the environment, a TOML
# file, or a default that changed with the code.
OUTSIDE_THE_LOG = "environment"

# Settings that cannot be changed through the log (path -> why, for the refusal), whoever asks:
# the CLI (`tradecore config set`) and the REST API (PUT /config/{path}).
NOT_SETTABLE_THROUGH_LOG: Mapping[str, str] = MappingProxyType({
    "eventstore.url": "it is where the log lives; set it with --store or EVENTSTORE__URL",
})

_FINGERPRINT = re.compile(r"set:[0-9a-f]+")


def ledger_events(trading: TradingApplication) -> list[DomainEvent]:
    """Every event of the config ledger stream, oldest first (empty before the first one)."""
    return list(trading.repository.event_store.get(CONFIG_LEDGER_ID))


def overrides_from(events: Iterable[DomainEvent]) -> dict[str, str]:
    """The values recorded by ``ConfigChanged`` (not by baselines); a change to None drops one."""
    overrides: dict[str, str] = {}
    for event in events:
        if isinstance(event, ConfigChanged):
            if event.new_value is None:
                overrides.pop(event.path, None)
            else:
                overrides[event.path] = event.new_value
    return overrides


def recorded_sources(events: Iterable[DomainEvent]) -> dict[str, str]:
    """Dotted path -> "recorded change by ACTOR at TIME" for every change still in force (for `config show`)."""
    sources: dict[str, str] = {}
    for event in events:
        if isinstance(event, ConfigChanged):
            if event.new_value is None:
                sources.pop(event.path, None)
            else:
                sources[event.path] = f"recorded change by {event.actor} at {event.occurred_at.isoformat()}"
    return sources


def recorded_overrides(trading: TradingApplication) -> dict[str, str]:
    """Dotted path -> canonical value of every setting changed through the log and still in force.

    Pass it as ``overrides`` to the settings loader (below any CLI flags) to get the effective
    configuration. Baseline values are snapshots, not overrides, so they are not included.
    """
    return overrides_from(ledger_events(trading))


@dataclass(frozen=True)
class Baseline:
    """The last approved configuration: its values, hash, and who set it when, why."""

    values: dict[str, str]
    config_hash: str
    actor: str
    occurred_at: datetime
    reason: str
    version: int


@dataclass(frozen=True)
class DriftItem:
    """One setting whose effective value differs from the baseline, and who changed it when.

    ``actor`` is the operator of the recorded change that produced the current value, or
    ``"environment"`` (with no time) when the difference came from outside the log.
    """

    path: str
    baseline: str | None
    current: str | None
    actor: str
    occurred_at: datetime | None
    reason: str | None

    @property
    def recorded(self) -> bool:
        return self.occurred_at is not None


@dataclass(frozen=True)
class DriftReport:
    baseline: Baseline
    current_hash: str
    items: list[DriftItem]

    @property
    def drifted(self) -> bool:
        return bool(self.items)


def last_baseline(events: Sequence[DomainEvent]) -> Baseline | None:
    """The most recent ``ConfigBaselineSet``, or None when no baseline was ever recorded."""
    for event in reversed(events):
        if isinstance(event, ConfigBaselineSet):
            return Baseline(
                values=dict(event.values),
                config_hash=event.config_hash,
                actor=event.actor,
                occurred_at=event.occurred_at,
                reason=event.reason,
                version=event.originator_version,
            )
    return None


def config_drift(events: Sequence[DomainEvent], current: Mapping[str, str], current_hash: str) -> DriftReport | None:
    """Compare the last baseline with the current effective values; None without a baseline.

    A difference is attributed to the last ``ConfigChanged`` of that path after the baseline when
    that change set the value now in effect; otherwise it came from outside the log.
    """
    baseline = last_baseline(events)
    if baseline is None:
        return None
    last_change: dict[str, ConfigChanged] = {}
    for event in events:
        if isinstance(event, ConfigChanged) and event.originator_version > baseline.version:
            last_change[event.path] = event
    items: list[DriftItem] = []
    for path in sorted(set(baseline.values) | set(current)):
        before, now = baseline.values.get(path), current.get(path)
        if before == now:
            continue
        change = last_change.get(path)
        if change is not None and change.new_value == now:
            items.append(DriftItem(path, before, now, change.actor, change.occurred_at, change.reason))
        else:
            items.append(DriftItem(path, before, now, OUTSIDE_THE_LOG, None, None))
    return DriftReport(baseline, current_hash, items)


def secret_display(value: str | None) -> str | None:
    """A secret's canonical value for people: ``set``/``unset``, fingerprints removed (also inside lists)."""
    if value is None:
        return None
    return _FINGERPRINT.sub("set", value)
