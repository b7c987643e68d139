"""Health alerts: one stream per health check, so de-duplication is a matter of state.

An ``Alert`` is raised once when its check starts failing and resolved once
when the check recovers; while it stays active, further failing samples
record nothing. The one exception is an escalation: a more severe failure of
the same check (a daily loss that goes from "near the limit", P1, to "at the
limit", P0) raises again with the higher severity, because whoever was paged
for the first must hear about the second. Severities are the operations
manual's P0 (critical) to P3 (low), ``domain.control.Severity``.

The domain reads no clock and no thresholds of its own: the application
passes the measured value, the threshold it crossed and the time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any

from domain.aggregate import Aggregate
from domain.control import Severity
from domain.events import EVENT_NAMESPACE, DomainError, DomainEvent, EventMeta, Money, UtcDatetime

__all__ = ["Alert", "AlertRaised", "AlertResolved", "CheckState", "alert_id", "more_severe"]


class CheckState(str, Enum):
    """How far past its thresholds a failing check is."""

    WARN = "warn"  # past the manual's target
    CRITICAL = "critical"  # past its alert level


def alert_id(check: str, scope: str = "tradecore") -> uuid.UUID:
    """The stream of one check's alerts (``scope`` tells bots sharing a store apart)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"alert:{scope}:{check}")


def more_severe(a: Severity | str, b: Severity | str) -> bool:
    """Whether severity ``a`` is more severe than ``b`` (P0 is the most severe)."""
    return int(Severity(a).value[1]) < int(Severity(b).value[1])


class AlertRaised(DomainEvent):
    """A health check crossed its threshold: check name, severity (P0-P3), the measured value, the
    threshold it crossed (with unit), and the message sent to the operators. Raised once per failure
    episode, again only when the failure escalates to a higher severity."""

    check: str
    severity: Severity
    status: CheckState
    value: Money | None = None  # None when the measurement itself failed
    threshold: Money | None = None
    unit: str = ""
    message: str

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:  # the first alert of a check starts its stream
            if self.originator_version != 1:
                raise DomainError(f"AlertRaised at version {self.originator_version} cannot start a stream")
            alert = Alert.__new__(Alert)
            Aggregate.__init__(alert, self.originator_id, 1, self.occurred_at)
            alert.check = self.check
            self.apply(alert)
            return alert
        return super().mutate(aggregate)

    def apply(self, alert: Alert) -> None:
        if not alert.active:
            alert.raised_at = self.occurred_at
            alert.episodes += 1
        alert.active = True
        alert.severity = self.severity
        alert.status = self.status.value


class AlertResolved(DomainEvent):
    """The check recovered (back within its target): the value now, the threshold, the severity of the
    alert it closes, when that alert was first raised, and the recovery message sent."""

    check: str
    severity: Severity
    value: Money | None = None
    threshold: Money | None = None
    unit: str = ""
    raised_at: UtcDatetime
    message: str

    def apply(self, alert: Alert) -> None:
        alert.active = False
        alert.severity = None
        alert.status = "ok"


class Alert(Aggregate):
    """One health check's alert state: active or not, at which severity."""

    check: str
    active: bool = False
    severity: Severity | None = None
    status: str = "ok"
    raised_at: datetime | None = None
    episodes: int = 0

    @classmethod
    def first(cls, check: str, meta: EventMeta, *, severity: Severity | str, status: str,
              value: Any, threshold: Any, unit: str, message: str, scope: str = "tradecore") -> Alert:
        """The first alert ever for a check: starts its stream."""
        _check_name(check)
        event = AlertRaised.build(alert_id(check, scope), 1, meta, check=check, severity=severity, status=status,
                                  value=value, threshold=threshold, unit=unit, message=message)
        alert = event.mutate(None)
        alert._pending.append(event)
        return alert

    def raise_alert(self, meta: EventMeta, *, severity: Severity | str, status: str, value: Any,
                    threshold: Any, unit: str, message: str) -> bool:
        """Raise unless already active at this severity or a more severe one; True when raised."""
        severity = Severity(severity)
        if self.active and self.severity is not None and not more_severe(severity, self.severity):
            return False
        self._trigger(AlertRaised, meta, check=self.check, severity=severity, status=status, value=value,
                      threshold=threshold, unit=unit, message=message)
        return True

    def resolve(self, meta: EventMeta, *, value: Any, threshold: Any, unit: str, message: str) -> bool:
        """Resolve an active alert; False (nothing recorded) when none is active."""
        if not self.active:
            return False
        assert self.severity is not None and self.raised_at is not None
        self._trigger(AlertResolved, meta, check=self.check, severity=self.severity, value=value,
                      threshold=threshold, unit=unit, raised_at=self.raised_at, message=message)
        return True


def _check_name(check: str) -> None:
    if not check or not check.strip():
        raise DomainError("an alert needs the name of its check")
