"""The operator's controls: halt, resume, cancel-all, incidents.

Every control is an event on a trading-control stream (or an incident
stream) whose actor is the operator's name: one bot's own stream
(``--bot ID``), or the one every bot obeys (``--all``, the default), so it survives restarts and shows
in the timeline. Orders are cancelled by the process that owns the exchange
session (``tradecore run``): a ``CancelAllRequested`` (which a P0 halt or a P0
incident also records) is its instruction, and ``ControlWatch`` is how it
notices one. The CLI and the REST API only record; they never talk to the
venue behind the running process's back, so the order streams keep one writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from eventsourcing.utils import get_topic

from application.ports import Clock, ExecutionReport, IdSource
from application.trading_app import TradingApplication
from domain.control import (
    TRADING_CONTROL_ID,
    bot_control_id,
    Incident,
    RunMode,
    RunStarted,
    Severity,
    TradingControl,
)
from domain.events import DomainError, EventMeta
from domain.order import (
    OrderAccepted,
    OrderCancelled,
    FillDiscovered,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderPlaced,
    OrderReconciled,
    OrderRejected,
    OrderSubmitted,
)

ORDER_EVENTS = (OrderPlaced, OrderSubmitted, OrderAccepted, OrderPartiallyFilled, OrderFilled,
                OrderCancelled, OrderRejected, OrderExpired, FillDiscovered, OrderReconciled)


@dataclass(frozen=True)
class HaltOutcome:
    """What a halt recorded: the control state, and whether cancels were requested."""

    control: TradingControl
    cancel_requested: bool
    already_halted: bool = False


@dataclass(frozen=True)
class IncidentOutcome:
    incident_id: uuid.UUID
    halted: HaltOutcome | None


class OperatorControls:
    """Records the operator's controls; the running process acts on them."""

    def __init__(self, store: TradingApplication, clock: Clock, ids: IdSource):
        self.store = store
        self.clock = clock
        self.ids = ids

    def _meta(self, actor: str, correlation: uuid.UUID | None = None) -> EventMeta:
        if not actor or not actor.strip():
            raise DomainError("a control needs an actor (the operator's name)")
        return EventMeta(self.clock.now(), actor, correlation or TRADING_CONTROL_ID, None, None)

    def halt(self, reason: str, severity: Severity | str, actor: str, bot: str | None = None) -> HaltOutcome:
        """Stop new entries of one bot (``bot``) or of every bot (None); a P0 also asks for every working order
        to be cancelled (see ``TradingControl.operator_halt`` for a P0 on an already-halted bot)."""
        severity = Severity(severity)
        _require("a halt needs a reason", reason)
        control, already = self.store.operator_halt(reason, severity, self._meta(actor), control_stream(bot))
        return HaltOutcome(control, severity is Severity.P0, already)

    def resume(self, reason: str, actor: str, bot: str | None = None) -> TradingControl:
        _require("a resume needs a reason (who checked what)", reason)
        return self.store.resume_trading(reason, self._meta(actor), control_stream(bot))

    def cancel_all(self, reason: str, actor: str, bot: str | None = None) -> TradingControl:
        _require("a cancel-all needs a reason", reason)
        return self.store.request_cancel_all(reason, self._meta(actor), control_stream(bot))

    def open_incident(self, severity: Severity | str, kind: str, details: str, actor: str,
                      bot: str | None = None) -> IncidentOutcome:
        """Declare an incident about one bot (or every bot); a P0 also halts it and requests cancels."""
        severity = Severity(severity)
        _require("an incident needs kind", kind)
        _require("an incident needs details", details)
        incident_id = self.ids.new_id()
        self.store.open_incident(incident_id, self._meta(actor, incident_id), severity=severity, kind=kind,
                                 details=details, bot_id=bot)
        halted = None
        if severity is Severity.P0:
            halted = self.halt(f"P0 incident {incident_id}: {kind}", Severity.P0, actor, bot)
        return IncidentOutcome(incident_id, halted)

    def resolve_incident(self, incident_id: uuid.UUID, note: str, actor: str) -> Incident:
        _require("resolving an incident needs a note", note)
        return self.store.resolve_incident(incident_id, note, self._meta(actor, incident_id))


def control_stream(bot: str | None) -> uuid.UUID:
    """The control stream of one bot, or (None) the one every bot obeys."""
    return bot_control_id(bot) if bot else TRADING_CONTROL_ID


def _require(message: str, text: str) -> None:
    if not text or not text.strip():
        raise DomainError(message)


@dataclass
class ControlWatch:
    """For the process that owns the exchange session: notices new controls.

    ``poll()`` reloads the bot's control stream (``bot``; None: the shared one
    alone, as before bots) and the one every bot obeys (``fleet``); when cancel
    requests were recorded on either since the last poll it calls
    ``on_cancel_all`` (which should call the gateway's ``cancel_all`` and apply
    the reports through the loop). Requests recorded before the watch started
    are served on the first poll while trading is halted, so a P0 that raced a
    crash is not lost.
    """

    store: TradingApplication
    on_cancel_all: Callable[[], list[ExecutionReport]]
    served: int | None = None
    control: TradingControl | None = field(default=None)
    bot: str | None = None
    fleet: TradingControl | None = field(default=None)

    def poll(self) -> TradingControl | None:
        self.control = self.store.get_trading_control(control_stream(self.bot))
        self.fleet = self.store.get_trading_control() if self.bot else None
        requests = sum(c.cancel_requests for c in (self.control, self.fleet) if c is not None)
        if self.served is None:
            self.served = 0 if self.halted else requests
        if requests > self.served:
            self.served = requests
            self.on_cancel_all()
        return self.control

    @property
    def halt(self) -> TradingControl | None:
        """The halt in force (the bot's own first), or None."""
        return next((c for c in (self.control, self.fleet) if c is not None and c.halted), None)

    @property
    def halted(self) -> bool:
        return self.halt is not None


def working_orders(store: TradingApplication, modes: tuple[RunMode, ...] = (RunMode.PAPER, RunMode.LIVE)) -> list:
    """Orders of paper/live runs that are still working (not filled, cancelled, rejected or expired).

    Rebuilt from the log's order events (backtest orders are excluded: their
    exchange is gone when the run ends).
    """
    runs = {
        logged.event.originator_id
        for logged in store.iter_log(topics=[get_topic(RunStarted)])
        if logged.event.mode in modes
    }
    if not runs:
        return []
    orders: dict[uuid.UUID, object] = {}
    for logged in store.iter_log(topics=[get_topic(cls) for cls in ORDER_EVENTS]):
        event = logged.event
        if event.run_id not in runs:
            continue
        orders[event.originator_id] = event.mutate(orders.get(event.originator_id))
    return [order for order in orders.values() if order.is_working]

