"""HOLD decisions of one run as columns: the ``DecisionMade`` events of a backtest's quiet candles, validated per
batch.

Most candles of a backtest end in a HOLD that changes nothing but the log: ``DecisionMade`` with the rules'
inputs and rationale. A ``HoldDecisions`` batch keeps those events as columns (ids, times, the row of the
indicator columns, the position and the rationale) instead of one validated model each. Before anything of a
batch is stored, ``json_columns`` validates every column with the types of ``DecisionMade``'s own fields
(pydantic, one call per column) and gives each value's JSON as the event's serializer writes it; one bad
value anywhere refuses the whole batch with an ``EventValidationError`` naming the field, the row and the
value. ``event(k)`` is row ``k`` as the model the trading loop would have made (``Decision.of``), so a
batch can always be checked against, or fall back to, the one-event path.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Optional

import numpy as np

from pydantic import TypeAdapter, ValidationError

from domain.decision import Decision, DecisionMade, StrategyDecision, TradeAction, TradeActionKind
from domain.events import EventMeta, EventValidationError
from domain.ids import uuid_from_int

__all__ = ["HoldDecisions", "field_adapter"]

_HOLD_RATIONALE_LIMIT = 200  # TradeAction.rationale; DecisionMade allows 500


def field_adapter(name: str) -> TypeAdapter:
    """A TypeAdapter of one ``DecisionMade`` field's type (its annotation and constraints)."""
    return _ADAPTERS[name]


def _adapter_of(name: str) -> TypeAdapter:
    info = DecisionMade.model_fields[name]
    annotation = info.annotation
    if info.metadata:
        annotation = typing.Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


_ADAPTERS = {name: _adapter_of(name) for name in ("occurred_at", "candle_start", "rationale", "inputs")}
_LIST_OF_TIMES = TypeAdapter(list[typing.Annotated[(DecisionMade.model_fields["occurred_at"].annotation,
                                                    *DecisionMade.model_fields["occurred_at"].metadata)]])
_INPUT_VALUE = typing.get_args(DecisionMade.model_fields["inputs"].annotation)[1]
_LIST_OF_INPUTS = TypeAdapter(list[_INPUT_VALUE])


class HoldDecisions:
    """``DecisionMade`` HOLD events of one run, strategy and product, as columns, in log order.

    ``inputs`` are the indicator columns every row points into (name -> values, JSON-safe scalars such as
    ``strategy_rules._scalar`` gives); each row adds the position quantity (text) as the last input.
    """

    def __init__(self, run_id: uuid.UUID, strategy: str, product: str, inputs: dict[str, Sequence[Any]]):
        self.run_id = run_id
        self.strategy = strategy
        self.actor = f"strategy:{strategy}"
        self.product = product
        self.inputs = inputs
        self.ids: list[int] = []  # the decision (stream) ids as 128-bit integers
        self.occurred_at: list[datetime] = []
        self.candle_start: list[datetime] = []
        self.rows: list[int] = []
        self.position_quantity: list[str] = []
        self.rationale: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, decision_id: int, occurred_at: datetime, candle_start: datetime, row: int, position_quantity: str,
            rationale: str) -> None:
        """One more HOLD decision: its id (an integer), the candle's close and start, its row of the inputs."""
        self.ids.append(decision_id)
        self.occurred_at.append(occurred_at)
        self.candle_start.append(candle_start)
        self.rows.append(row)
        self.position_quantity.append(position_quantity)
        self.rationale.append(rationale)

    def extend(self, decision_ids: Sequence[int], occurred_at: Sequence[datetime], candle_start: Sequence[datetime],
               rows: Sequence[int], position_quantity: str, rationale: Sequence[str]) -> None:
        """``add`` for several rows at once, all at the same position quantity."""
        self.ids.extend(decision_ids)
        self.occurred_at.extend(occurred_at)
        self.candle_start.extend(candle_start)
        self.rows.extend(rows)
        self.position_quantity.extend([position_quantity] * len(rows))
        self.rationale.extend(rationale)

    def inputs_of(self, k: int) -> dict[str, Any]:
        row = self.rows[k]
        made = {name: values[row] for name, values in self.inputs.items()}
        made["position_quantity"] = self.position_quantity[k]
        return made

    def event(self, k: int) -> DecisionMade:
        """Row ``k`` as the event the trading loop makes of a HOLD (validated, one at a time)."""
        decision_id = uuid_from_int(self.ids[k])
        inputs = self.inputs_of(k)
        decided = StrategyDecision(action=TradeAction(action=TradeActionKind.HOLD, size_pct=0, rationale=self.rationale[k]),
                                   strategy=self.strategy, inputs=inputs)
        meta = EventMeta(self.occurred_at[k], self.actor, decision_id, None, self.run_id)
        (made,) = Decision.of(decision_id, meta, decided, self.product, self.candle_start[k], inputs).collect_events()
        return made

    def events(self) -> list[DecisionMade]:
        return [self.event(k) for k in range(len(self))]

    # --- validation per column ----------------------------------------------------------------------

    def json_columns(self) -> dict[str, list[bytes]]:
        """Every varying field validated per column, and each value's JSON as ``DecisionMade`` writes it.

        Keys: ``originator_id`` (also the correlation id), ``occurred_at``, ``candle_start``, ``rationale``
        and ``inputs.<name>`` for each input, ``position_quantity`` last. Raises ``EventValidationError``
        naming the field, the row and the value of the first bad value; nothing is returned then.
        """
        out: dict[str, list[bytes]] = {}
        ids = self.ids
        if ids and (set(map(type, ids)) != {int} or min(ids) < 0 or max(ids) >= 1 << 128):
            k = next(k for k, n in enumerate(ids) if type(n) is not int or not 0 <= n < 1 << 128)
            raise EventValidationError("DecisionMade", [(f"originator_id (row {k})", ids[k], "not a 128-bit UUID")])
        out["originator_id"] = _uuids_json(ids)
        for name in ("occurred_at", "candle_start"):
            out[name] = _times_json(getattr(self, name), name)
        texts = self.rationale
        if texts and (set(map(type, texts)) != {str} or max(map(len, texts)) > _HOLD_RATIONALE_LIMIT):
            k = next(k for k, t in enumerate(texts) if type(t) is not str or len(t) > _HOLD_RATIONALE_LIMIT)
            raise EventValidationError("DecisionMade", [(f"rationale (row {k})", texts[k],
                                                         f"a text of at most {_HOLD_RATIONALE_LIMIT} characters")])
        out["rationale"] = _strings_json(texts, field_adapter("rationale"))
        rows = self.rows
        contiguous = bool(rows) and rows[-1] - rows[0] == len(rows) - 1 and rows == list(range(rows[0], rows[-1] + 1))
        for name, values in self.inputs.items():
            column = list(values[rows[0]:rows[-1] + 1]) if contiguous else [values[r] for r in rows]
            out[f"inputs.{name}"] = _inputs_json(column, f"inputs.{name}")
        quantities = self.position_quantity
        if quantities and set(map(type, quantities)) != {str}:
            k = next(k for k, t in enumerate(quantities) if type(t) is not str)
            raise EventValidationError("DecisionMade", [(f"inputs.position_quantity (row {k})", quantities[k], "not a text")])
        out["inputs.position_quantity"] = _strings_json(quantities, _INPUT_ADAPTER)
        return out


_INPUT_ADAPTER = TypeAdapter(_INPUT_VALUE)
_FLOATS = TypeAdapter(list[Optional[float]])
_UTC_TIMES = TypeAdapter(list[datetime])
_BOOL_JSON = {True: b"true", False: b"false"}
_tzinfo = attrgetter("tzinfo")


def _dump(adapter: TypeAdapter, values: list, field: str) -> bytes:
    try:
        valid = adapter.validate_python(values, strict=False)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        row = error["loc"][0] if error.get("loc") else "?"
        message = error.get("msg", "invalid")
        if error.get("type") == "timezone_aware":
            message = "naive datetime (a UTC timezone is required)"
        raise EventValidationError("DecisionMade", [(f"{field} (row {row})", error.get("input"), message)]) from None
    return adapter.dump_json(valid)


def _times_json(values: list, field: str) -> list[bytes]:
    # datetimes in UTC already are what the field's validation gives back: written as they are
    if set(map(type, values)) <= {datetime} and set(map(_tzinfo, values)) <= {timezone.utc}:
        return _split(_UTC_TIMES.dump_json(values))
    return _split(_dump(_LIST_OF_TIMES, values, field))


def _inputs_json(values: list, field: str) -> list[bytes]:
    kinds = set(map(type, values))
    if kinds <= {bool}:  # flags: valid as they are
        return list(map(_BOOL_JSON.__getitem__, values))
    if kinds <= {float, type(None)}:  # numbers: valid as they are, written as pydantic writes a float
        return _split(_FLOATS.dump_json(values))
    return _split(_dump(_LIST_OF_INPUTS, values, field))


def _split(listed: bytes) -> list[bytes]:
    # A JSON list of numbers, booleans, nulls or ISO times: none of them holds a comma.
    inner = listed[1:-1]
    return inner.split(b",") if inner else []


def _strings_json(texts: list[str], adapter: TypeAdapter) -> list[bytes]:
    if not texts:
        return []
    body = "".join(texts)
    if body.isascii() and body.isprintable() and '"' not in body and "\\" not in body:
        # printable ASCII without quotes or backslashes is written as it is, between quotes
        return ('"' + '"\x00"'.join(texts) + '"').encode().split(b"\x00")
    return [adapter.dump_json(text) for text in texts]


def _uuids_json(ids: list[int]) -> list[bytes]:
    """Each id as its JSON text (a quoted 8-4-4-4-12 UUID), built for the whole column at once."""
    if not ids:
        return []
    digits = np.frombuffer((("%032x" * len(ids)) % tuple(ids)).encode(), dtype="S1").reshape(-1, 32)
    out = np.empty((len(ids), 38), dtype="S1")
    out[:, [0, 37]] = b'"'
    out[:, [9, 14, 19, 24]] = b"-"
    for into, frm in ((1, 0), (10, 8), (15, 12), (20, 16), (25, 20)):
        width = {0: 8, 8: 4, 12: 4, 16: 4, 20: 12}[frm]
        out[:, into:into + width] = digits[:, frm:frm + width]
    return out.view("S38").ravel().tolist()
