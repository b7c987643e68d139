"""The configuration ledger: every change of an effective setting, and baselines.

Values are canonical strings keyed by dotted path (``risk.max_daily_loss_pct``).
Secrets never arrive here: the caller passes ``set:<fingerprint>`` or
``unset`` for them. The drift view compares the current values with the last
baseline.
"""

from __future__ import annotations

import uuid

from domain.aggregate import Aggregate, StartingEvent
from domain.events import EVENT_NAMESPACE, DomainError, DomainEvent, EventMeta, FieldProblem

CONFIG_LEDGER_ID = uuid.uuid5(EVENT_NAMESPACE, "config-ledger")


class ConfigLedgerStarted(StartingEvent):
    """Starts the configuration ledger stream."""

    @classmethod
    def _aggregate_class(cls):
        return ConfigLedger

    def apply(self, ledger: ConfigLedger) -> None:
        ledger.values = {}
        ledger.baseline = None
        ledger.config_hash = None


class ConfigChanged(DomainEvent):
    """One setting changed: from what, to what, by whom, why."""

    path: str
    old_value: str | None
    new_value: str | None
    reason: str
    config_hash: str

    def apply(self, ledger: ConfigLedger) -> None:
        if self.new_value is None:
            ledger.values.pop(self.path, None)
        else:
            ledger.values[self.path] = self.new_value
        ledger.config_hash = self.config_hash


class ConfigBaselineSet(DomainEvent):
    """The approved configuration that drift is measured against."""

    values: dict[str, str]
    config_hash: str
    reason: str = ""

    def apply(self, ledger: ConfigLedger) -> None:
        ledger.baseline = dict(self.values)
        ledger.values = dict(self.values) | {k: v for k, v in ledger.values.items() if k not in self.values}
        ledger.config_hash = self.config_hash


class ConfigLedger(Aggregate):
    values: dict[str, str]
    baseline: dict[str, str] | None
    config_hash: str | None

    @classmethod
    def start(cls, meta: EventMeta) -> ConfigLedger:
        return cls._start(ConfigLedgerStarted.build(CONFIG_LEDGER_ID, 1, meta))

    def change(
        self, path: str, new_value: str | None, reason: str, config_hash: str, meta: EventMeta,
        in_effect: str | None = None, *, knows_effective: bool = False,
    ) -> bool:
        """Record a change; False when the value is already in effect.

        The caller knows the value actually in effect (environment, file and
        recorded changes together) and passes it with ``knows_effective``; the
        ledger alone only knows baselines and recorded changes.
        """
        if not path or path.strip() != path:
            raise FieldProblem("path", path, "must be a dotted setting path")
        old = in_effect if knows_effective else self.values.get(path)
        if old == new_value:
            return False
        self._trigger(
            ConfigChanged, meta, path=path, old_value=old, new_value=new_value, reason=reason, config_hash=config_hash
        )
        return True

    def set_baseline(self, values: dict[str, str], config_hash: str, meta: EventMeta, reason: str = "") -> None:
        if not values:
            raise DomainError("a baseline needs at least one setting")
        self._trigger(ConfigBaselineSet, meta, values=values, config_hash=config_hash, reason=reason)

    def drift(self) -> dict[str, tuple[str | None, str | None]]:
        """Paths whose current value differs from the baseline: (baseline, current)."""
        base = self.baseline or {}
        paths = set(base) | set(self.values)
        return {
            p: (base.get(p), self.values.get(p)) for p in sorted(paths) if base.get(p) != self.values.get(p)
        }
