"""One line for people per event of the log: what it says (the replay's timeline, text and HTML)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from application.replay.book import CONTROL_TYPES, DECISION_TYPES, FILL_TYPES, ORDER_TYPES, ReplayBook, name_of
from domain.events import DomainEvent

CANDLE_TYPES = frozenset({"CandleClosed", "CandleCorrected"})


def category_of(name: str) -> str:
    if name in CANDLE_TYPES:
        return "candle"
    if name in DECISION_TYPES:
        return "decision"
    if name == "RiskAssessed":
        return "risk"
    if name in FILL_TYPES:
        return "fill"
    if name in ORDER_TYPES:
        return "order"
    if name in CONTROL_TYPES:
        return "control"
    if name.startswith("Incident"):
        return "incident"
    if name.startswith("Config"):
        return "config"
    if name.startswith("Run"):
        return "run"
    return "account"


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _short(value: Decimal) -> Decimal:
    # Figures for reading (the event keeps them exact): at most 4 decimals.
    return value.quantize(Decimal("0.0001")).normalize() if value.as_tuple().exponent < -4 else value


def _indicators(inputs: dict[str, Any]) -> str:
    parts = []
    for key, value in inputs.items():
        if value is True:  # a flag that is set, as a word (people read this line)
            parts.append(f"{key}=yes")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.3f}")
        elif value not in (None, False):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def describe(e: DomainEvent, book: ReplayBook | None = None) -> str:
    """One line for people: what this event says."""
    name = name_of(e)
    if name == "CandleClosed":
        return f"{e.product} {e.granularity} {e.start:%H:%M} O {e.open} H {e.high} L {e.low} C {e.close} V {e.volume}"
    if name == "CandleCorrected":
        return f"{e.product} {e.start:%H:%M} corrected: close {e.previous_close} -> {e.close}"
    if name == "DecisionMade":
        levels = f" sl {_num(e.stop_loss_pct)}% tp {_num(e.take_profit_pct)}%" if e.action.value in ("LONG", "SHORT") else ""
        model = f"/{e.model}" if e.model else ""
        text = f"{e.action.value} {e.size_pct}%{levels} [{e.strategy}{model}] {e.rationale!r}"
        ind = _indicators(e.inputs)
        return f"{text} | {ind}" if ind else text
    if name == "DecisionFailed":
        return f"FAILED ({e.kind.value}): {e.detail} -> {e.fallback_action.value} [{e.strategy}]"
    if name == "RiskAssessed":
        verdict = "approved" if e.approved else "REFUSED"
        nums = " ".join(f"{k}={_short(v)}" for k, v in e.numbers.items())
        return f"{verdict} by {e.rule}: {e.requested_size_pct}% -> {e.approved_size_pct}%; {e.message} ({nums})"
    if name == "OrderPlaced":
        levels = "".join(f" {k} {v}" for k, v in (("sl", e.stop_loss_price), ("tp", e.take_profit_price)) if v is not None)
        limit = f" @ {e.limit_price}" if e.limit_price is not None else ""
        return f"{e.side.value} {e.quantity} {e.product} {e.order_type.value}{limit}{levels} ({e.client_order_id})"
    if name in FILL_TYPES:
        return (f"fill {e.fill_id}: {e.quantity} @ {e.price} fee {e.fee} {e.fee_currency} {e.liquidity.value} "
                f"(cumulative {e.cumulative_quantity})")
    line = _LINES.get(name)
    if line is not None:
        return line(e)
    payload = e.payload()
    return " ".join(f"{k}={v}" for k, v in payload.items())[:200]


# One line per event kind that needs nothing but its own fields.
_LINES: dict[str, Any] = {
    "OrderAccepted": lambda e: f"accepted as {e.venue_order_id}",
    **{name: (lambda e: f"{type(e).__name__[5:].lower()}: {e.reason}")
       for name in ("OrderCancelled", "OrderRejected", "OrderExpired")},
    "OrderReconciled": lambda e: (f"reconciled {e.previous_status.value} -> {e.status.value} (venue {e.venue_status}): "
                                  f"{e.reason}"),
    "OrderSubmitted": lambda e: "sent to the exchange",
    "TradingHalted": lambda e: f"HALT {e.severity.value} by {e.actor}: {e.reason}",
    "TradingResumed": lambda e: f"resumed by {e.actor}: {e.reason}",
    "CancelAllRequested": lambda e: f"cancel-all requested by {e.actor}: {e.reason}",
    "ControlStarted": lambda e: "control stream started",
    "IncidentOpened": lambda e: f"INCIDENT {e.severity.value} {e.kind} opened by {e.actor}: {e.details}",
    "IncidentResolved": lambda e: f"incident resolved by {e.actor}: {e.note}",
    "ConfigChanged": lambda e: (f"config {e.path}: {e.old_value} -> {e.new_value} by {e.actor} ({e.reason}); "
                                f"hash {e.config_hash[:12]}"),
    "ConfigBaselineSet": lambda e: f"config baseline set by {e.actor}: {len(e.values)} settings, hash {e.config_hash[:12]}",
    "RunStarted": lambda e: (f"{e.mode.value} run started: {e.product} {e.granularity} {e.strategy}, "
                             f"config {e.config_hash[:12]}"),
    "RunEnded": lambda e: f"run ended {e.status}: {e.reason}",
    **{name: (lambda e: f"{type(e).__name__[5:].lower()} {e.amount} {e.currency}")
       for name in ("FundsDeposited", "FundsWithdrawn")},
    "BalanceReconciled": lambda e: (f"balance {e.currency}: recorded {e.recorded} venue {e.venue} "
                                    f"(difference {e.difference})"),
}
