"""``replay --verify``: re-execute a recorded day and compare its orders and fills with the log's.

The day is re-run (``application.replay.rerun``) from the recorded candles, the
recorded decisions and the config in effect; then the order events it produced
(placed, submitted, accepted, filled, cancelled, rejected, expired) are paired
with the recorded ones in order and compared field by field. The first
difference is the answer: which event, which field, recorded value, replayed
value. Ids are compared when the run used the loop's deterministic ids (a
backtest); otherwise they are random and left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from application.replay.rerun import Rerun
from application.replay.book import ORDER_TYPES, name_of
from domain.events import DomainEvent

ID_FIELDS = ("originator_id", "correlation_id", "causation_id", "decision_id", "client_order_id")
COMPARED_ENVELOPE = ("originator_version", "occurred_at", "actor", "run_id")


@dataclass(frozen=True)
class Divergence:
    """The first difference between the recorded day and its re-execution."""

    index: int  # position among the day's order and fill events (0-based)
    event: str  # e.g. "OrderFilled #177 at 2019-01-04T10:00:00+00:00"
    field: str
    recorded: str | None
    replayed: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event": self.event, "field": self.field, "recorded": self.recorded,
                "replayed": self.replayed}

    def __str__(self) -> str:
        return f"first divergence at {self.event}: {self.field} recorded {self.recorded} replayed {self.replayed}"


@dataclass
class VerifyReport:
    """The outcome of ``--verify``."""

    compared: int
    recorded_orders: int
    replayed_orders: int
    recorded_fills: int
    replayed_fills: int
    ids_compared: bool
    divergence: Divergence | None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.divergence is None

    def as_dict(self) -> dict[str, Any]:
        return {"identical": self.identical, "compared_events": self.compared, "recorded_orders": self.recorded_orders,
                "replayed_orders": self.replayed_orders, "recorded_fills": self.recorded_fills,
                "replayed_fills": self.replayed_fills, "ids_compared": self.ids_compared,
                "divergence": self.divergence.as_dict() if self.divergence else None, "notes": self.notes}


def order_events(events: list[DomainEvent]) -> list[DomainEvent]:
    return [e for e in events if name_of(e) in ORDER_TYPES]


def _fields(e: DomainEvent, with_ids: bool) -> dict[str, Any]:
    data = e.model_dump(mode="json")
    out = {k: data[k] for k in COMPARED_ENVELOPE}
    if with_ids:
        out.update({k: data[k] for k in ("originator_id", "correlation_id", "causation_id")})
    for key, value in e.payload().items():
        if with_ids or key not in ID_FIELDS:
            out[key] = value
    return out


def _label(e: DomainEvent | None, nid: int | None = None) -> str:
    if e is None:
        return "(none)"
    where = f" #{nid}" if nid else ""
    extra = ""
    payload = e.payload()
    if "fill_id" in payload:
        extra = f" fill {payload['fill_id']}"
    elif "side" in payload:
        extra = f" {payload['side']} {payload['quantity']}"
    return f"{name_of(e)}{where} at {e.occurred_at.isoformat()}{extra}"


def compare(recorded: list[tuple[int, DomainEvent]], rerun: Rerun) -> VerifyReport:
    """Pair the recorded and replayed order events in order; name the first difference."""
    replayed = order_events(rerun.events)
    with_ids = rerun.ids_comparable
    divergence = None
    n = max(len(recorded), len(replayed))
    compared = 0
    for i in range(n):
        rec = recorded[i] if i < len(recorded) else None
        rep = replayed[i] if i < len(replayed) else None
        compared += 1
        if rec is None:
            divergence = Divergence(i, f"{_label(rep)} (replay only)", "event", None, name_of(rep))
            break
        nid, rec_event = rec
        if rep is None:
            divergence = Divergence(i, _label(rec_event, nid), "event", name_of(rec_event), None)
            break
        if name_of(rec_event) != name_of(rep):
            divergence = Divergence(i, _label(rec_event, nid), "type", name_of(rec_event), name_of(rep))
            break
        a, b = _fields(rec_event, with_ids), _fields(rep, with_ids)
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                divergence = Divergence(i, _label(rec_event, nid), key, _text(a.get(key)), _text(b.get(key)))
                break
        if divergence:
            break
    fills = ("OrderFilled", "OrderPartiallyFilled", "FillDiscovered")
    notes = [] if with_ids else ["ids not compared: the run did not use the loop's deterministic ids"]
    return VerifyReport(
        compared=compared,
        recorded_orders=sum(1 for _, e in recorded if name_of(e) == "OrderPlaced"),
        replayed_orders=sum(1 for e in replayed if name_of(e) == "OrderPlaced"),
        recorded_fills=sum(1 for _, e in recorded if name_of(e) in fills),
        replayed_fills=sum(1 for e in replayed if name_of(e) in fills),
        ids_compared=with_ids, divergence=divergence, notes=notes,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def verify_day(log, limits, settings, exchange, store, captured) -> VerifyReport:
    """Re-run the day with the recorded decisions and compare its orders and fills with the log's."""
    from application.replay.timeline import book_before_first_step
    from application.replay.rerun import RecordedDecisions, day_inputs, rerun_day

    if log.run is None:
        raise ValueError("no run traded on this day: nothing to verify")
    start, _ = book_before_first_step(log, limits)
    inputs = day_inputs(log)
    rerun = rerun_day(log, start, inputs, settings=settings, exchange=exchange,
                      strategy=RecordedDecisions(inputs.decisions, log.run.strategy), store=store, captured=captured)
    recorded = [(le.notification_id, le.event) for le in log.events
                if le.event.run_id == log.run.run_id and name_of(le.event) in ORDER_TYPES]
    report = compare(recorded, rerun)
    report.notes.append(f"{len(inputs.candles)} candles re-executed from the state at 00:00 UTC")
    if not report.identical:
        why = first_verdict_difference([le.event for le in log.events if le.event.run_id == log.run.run_id],
                                       rerun.events)
        if why:
            report.notes.append(why)
    return report


def first_verdict_difference(recorded: list[DomainEvent], replayed: list[DomainEvent]) -> str | None:
    """The first risk verdict or halt that differs: usually why the orders differ."""
    kinds = ("RiskAssessed", "TradingHalted", "TradingResumed")

    def key(e: DomainEvent) -> tuple:
        if name_of(e) == "RiskAssessed":
            return ("RiskAssessed", e.approved, e.rule, str(e.approved_size_pct))
        return (name_of(e), e.reason)

    a = [e for e in recorded if name_of(e) in kinds]
    b = [e for e in replayed if name_of(e) in kinds]
    for i in range(max(len(a), len(b))):
        x, y = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        if x is None or y is None or key(x) != key(y) or x.occurred_at != y.occurred_at:
            at = (x or y).occurred_at.isoformat()
            return (f"first risk verdict or halt that differs, at {at}: recorded {key(x) if x else None}, "
                    f"replayed {key(y) if y else None}")
    return None
