"""The event catalogue as Markdown, rendered from the event classes themselves.

docs/events.md is this output; a test keeps the two equal, so the auditor's
reference cannot drift from the code. Regenerate with
``tradecore catalogue > docs/events.md``.
"""

from __future__ import annotations

import enum
import importlib
import types
import typing
from decimal import Decimal

from eventsourcing.utils import get_topic
from pydantic import AfterValidator, PlainValidator

from domain.events import DomainEvent

STREAMS: list[tuple[str, str, str]] = [
    ("Market data", "domain.market", "One stream per candle, id derived from (product, granularity, start)."),
    ("Decisions and risk", "domain.decision", "One stream per decision: the decision (or its failure), then its risk verdict."),
    ("Orders", "domain.order", "One stream per order; transitions follow the table in domain/order.py."),
    ("Account", "domain.account", "One stream per account (default `main`)."),
    ("Configuration", "domain.config", "One ledger stream for the whole bot."),
    ("Control, incidents and runs", "domain.control", "One control stream; one stream per incident and per run."),
    ("Health alerts", "domain.alerts", "One stream per health check: raised once per failure, resolved once on recovery."),
    ("Products", "domain.product", "One stream per product: its spec (currencies, increments, minimums) each time it changed."),
]

_VALIDATOR_NAMES = {
    "_decimal": "Decimal",
    "_positive": "Decimal > 0",
    "_non_negative": "Decimal >= 0",
    "_percent": "Decimal 0..100",
    "_as_utc": "UTC datetime",
}
ENVELOPE = ("originator_id", "originator_version", "occurred_at", "actor", "correlation_id", "causation_id", "run_id")


def _type_name(annotation: typing.Any, metadata: list | tuple = ()) -> str:
    for item in metadata:
        if isinstance(item, (PlainValidator, AfterValidator)):
            return _VALIDATOR_NAMES.get(item.func.__name__, "Decimal")
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in metadata if type(m).__name__ in ("Gt", "Ge", "Le", "Lt")}
    if annotation is Decimal and bounds:
        if "Ge" in bounds and "Le" in bounds:
            return f"Decimal {bounds['Ge']}..{bounds['Le']}"
        return "Decimal " + " ".join(f"{ {'Gt': '>', 'Ge': '>=', 'Le': '<=', 'Lt': '<'}[k]} {v}" for k, v in bounds.items())
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        flat = [m for item in meta for m in (getattr(item, "metadata", None) or [item])]
        return _type_name(base, flat)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        names = [_type_name(a) for a in args if a is not type(None)]
        suffix = " or null" if type(None) in args else ""
        return " | ".join(names) + suffix
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map {_type_name(key)} -> {_type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " / ".join(str(m.value) for m in annotation)
    if annotation is Decimal:
        return "Decimal"
    return getattr(annotation, "__name__", str(annotation))


def _events_of(module_name: str) -> list[type[DomainEvent]]:
    module = importlib.import_module(module_name)
    found = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, DomainEvent)
            and value.__module__ == module_name
            and not value.__name__.startswith("_")
            and not value.__dict__.get("abstract", False)
        ):
            found.append(value)
    return found


def render_catalogue() -> str:
    lines = [
        "# Event catalogue",
        "",
        "Every fact tradecore knows is one of these events, appended to one log in notification-id order.",
        "This page is generated from the event classes (`tradecore catalogue > docs/events.md`); a test keeps it equal.",
        "",
        "## Common to every event (the envelope)",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        "| originator_id | UUID | the stream (aggregate) the event belongs to |",
        "| originator_version | int | its position in that stream, from 1 |",
        "| occurred_at | UTC datetime | domain time: the candle's close in a backtest, the wall clock live |",
        "| actor | str | who caused it: `system`, `strategy:rules`, `operator:<token name>` ... |",
        "| correlation_id | UUID or null | the decision or run it belongs to |",
        "| causation_id | UUID or null | the event that caused it |",
        "| run_id | UUID or null | the run it happened in |",
        "",
        "`event_id` is derived, not stored: uuid5 of the stream id and version, so replays reproduce it.",
        "Stored payloads are the event's JSON (Decimals as strings, times ISO-8601 UTC); the topic is",
        "`module:ClassName`. An event class whose schema changed carries `class_version` N > 1 and",
        "upcasters `upcast_vK_vK+1`; a moved class keeps its old topic registered.",
        "Rejections (risk, venue) are events too, never silent.",
        "",
    ]
    for title, module_name, note in STREAMS:
        lines += [f"## {title}", "", note, ""]
        for cls in _events_of(module_name):
            doc = " ".join((cls.__dict__.get("__doc__") or "").split())
            lines += [f"### {cls.__name__}", "", doc, "", f"Topic `{get_topic(cls)}`, schema version {cls.class_version}.", ""]
            fields = [(n, f) for n, f in cls.model_fields.items() if n not in ENVELOPE]
            if not fields:
                lines += ["No fields beyond the envelope.", ""]
                continue
            lines += ["| field | type | required |", "|---|---|---|"]
            for name, info in fields:
                required = "yes" if info.is_required() else f"no (default `{info.default!r}`)"
                lines.append(f"| {name} | {_type_name(info.annotation, info.metadata)} | {required} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
