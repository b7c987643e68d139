"""Trading control (halt/resume), incidents, and runs.

Severities follow the operations manual: P0 (critical, halts trading) to P3.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from domain.aggregate import Aggregate, StartingEvent
from domain.events import EVENT_NAMESPACE, DomainError, DomainEvent, EventMeta, Money, UtcDatetime

TRADING_CONTROL_ID = uuid.uuid5(EVENT_NAMESPACE, "trading-control")
"""The control stream every paper and live bot obeys: ``tradecore halt --all`` (and ``halt`` without ``--bot``)."""


def default_bot_id(mode: str, product: str) -> str:
    """The bot of a run that names none: ``<mode>-<product>`` lower-case (``paper-btc-usd``).

    Runs recorded before bots had ids belong to this bot, so a restart keeps finding them."""
    return f"{mode}-{product}".lower()


def bot_control_id(bot_id: str) -> uuid.UUID:
    """One bot's own control stream: ``tradecore halt --bot ID`` and the bot's automatic halts."""
    return uuid.uuid5(EVENT_NAMESPACE, f"trading-control:bot:{bot_id}")


def run_control_id(run_id: uuid.UUID) -> uuid.UUID:
    """A backtest's own control stream: its automatic halts never halt live trading."""
    return uuid.uuid5(EVENT_NAMESPACE, f"trading-control:{run_id}")


class Severity(str, Enum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class RunMode(str, Enum):
    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class ControlStarted(StartingEvent):
    """Starts the trading-control stream (trading is not halted)."""

    @classmethod
    def _aggregate_class(cls):
        return TradingControl

    def apply(self, control: TradingControl) -> None:
        control.halted = False
        control.halt_reason = None
        control.halted_at = None
        control.halted_by = None
        control.severity = None
        control.cancel_requests = 0


class TradingHalted(DomainEvent):
    """Trading stopped: no new entries until resumed. Reason, severity (P0-P3), actor."""

    reason: str
    severity: Severity

    def apply(self, control: TradingControl) -> None:
        control.halted = True
        control.halt_reason = self.reason
        control.halted_at = self.occurred_at
        control.halted_by = self.actor
        control.severity = self.severity


class TradingResumed(DomainEvent):
    """Trading allowed again after a halt; the reason says who checked what."""

    reason: str

    def apply(self, control: TradingControl) -> None:
        control.halted = False
        control.halt_reason = None
        control.severity = None


class CancelAllRequested(DomainEvent):
    """An operator asked that every working order be cancelled at the venue.

    The process that owns the exchange session carries it out and records each
    ``OrderCancelled``; a P0 halt implies it. The count lets that process see
    requests it has not yet served.
    """

    reason: str

    def apply(self, control: TradingControl) -> None:
        control.cancel_requests += 1


class NotHalted(DomainError):
    pass


class AlreadyHalted(DomainError):
    pass


class TradingControl(Aggregate):
    halted: bool
    halt_reason: str | None
    halted_at: datetime | None
    halted_by: str | None
    severity: Severity | None
    cancel_requests: int = 0

    @property
    def halted_by_risk(self) -> bool:
        """A halt the risk rules made (it may lapse after the cooldown); not an operator's."""
        return self.halted and self.halted_by == "risk"

    @classmethod
    def start(cls, meta: EventMeta, control_id: uuid.UUID = TRADING_CONTROL_ID) -> TradingControl:
        return cls._start(ControlStarted.build(control_id, 1, meta))

    def halt(self, reason: str, severity: Severity | str, meta: EventMeta) -> None:
        if self.halted:
            raise AlreadyHalted(f"trading is already halted since {self.halted_at}: {self.halt_reason}")
        self._trigger(TradingHalted, meta, reason=reason, severity=severity)

    def resume(self, reason: str, meta: EventMeta) -> None:
        if not self.halted:
            raise NotHalted("trading is not halted")
        self._trigger(TradingResumed, meta, reason=reason)

    def request_cancel_all(self, reason: str, meta: EventMeta) -> None:
        self._trigger(CancelAllRequested, meta, reason=reason)

    def operator_halt(self, reason: str, severity: Severity | str, meta: EventMeta) -> bool:
        """An operator's halt: a P0 also requests that every working order be cancelled.

        A P0 on an already-halted bot still records the cancel request (an
        escalation must not be lost) and keeps the original halt; a lower
        severity then raises AlreadyHalted. Returns whether it was already halted.
        """
        severity = Severity(severity)
        already = self.halted
        if already and severity is not Severity.P0:
            raise AlreadyHalted(f"trading is already halted since {self.halted_at}: {self.halt_reason}")
        if not already:
            self.halt(reason, severity, meta)
        if severity is Severity.P0:
            self.request_cancel_all(f"P0 halt: {reason}", meta)
        return already


class IncidentOpened(StartingEvent):
    """An incident: severity P0-P3, kind, details, and the bot it concerns (None: every bot). P0 also halts it."""

    severity: Severity
    kind: str
    details: str
    bot_id: str | None = None

    @classmethod
    def _aggregate_class(cls):
        return Incident

    def apply(self, incident: Incident) -> None:
        incident.severity = self.severity
        incident.kind = self.kind
        incident.resolved = False


class IncidentResolved(DomainEvent):
    """The incident was resolved; the note says how."""

    note: str

    def apply(self, incident: Incident) -> None:
        incident.resolved = True


class Incident(Aggregate):
    severity: Severity
    kind: str
    resolved: bool

    @classmethod
    def declare(cls, incident_id: uuid.UUID, meta: EventMeta, *, severity: Severity | str, kind: str, details: str,
                bot_id: str | None = None):
        return cls._start(IncidentOpened.build(incident_id, 1, meta, severity=severity, kind=kind, details=details,
                                               bot_id=bot_id))

    def resolve(self, note: str, meta: EventMeta) -> None:
        if self.resolved:
            raise DomainError(f"incident {self.id} is already resolved")
        self._trigger(IncidentResolved, meta, note=note)


class RunStarted(StartingEvent):
    """A backtest, paper or live run began: mode, product, granularity, strategy, config hash, code version,
    and its bot (``bot_id``; runs recorded before bots had ids belong to ``<mode>-<product>``)."""

    mode: RunMode
    product: str
    granularity: str
    strategy: str
    config_hash: str
    code_version: str
    initial_balance: Money | None = None
    data_from: UtcDatetime | None = None
    data_to: UtcDatetime | None = None
    bot_id: str | None = None
    process: str | None = None
    """The process running it (``host:pid:start``), so another process can tell a dead run from a live one."""

    @property
    def bot(self) -> str:
        """The bot this run belongs to (its recorded ``bot_id``, else ``<mode>-<product>``)."""
        return self.bot_id or default_bot_id(self.mode.value, self.product)

    @classmethod
    def _aggregate_class(cls):
        return Run

    def apply(self, run: Run) -> None:
        run.mode = self.mode
        run.ended = False


class RunEnded(DomainEvent):
    """The run ended: status (completed, stopped, failed) and why."""

    status: str
    reason: str

    def apply(self, run: Run) -> None:
        run.ended = True


class Run(Aggregate):
    mode: RunMode
    ended: bool

    @classmethod
    def begin(cls, run_id: uuid.UUID, meta: EventMeta, **fields) -> Run:
        return cls._start(RunStarted.build(run_id, 1, meta, **fields))

    def end(self, status: str, reason: str, meta: EventMeta) -> None:
        if self.ended:
            raise DomainError(f"run {self.id} has already ended")
        self._trigger(RunEnded, meta, status=status, reason=reason)
