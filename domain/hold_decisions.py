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
from operator import itemgetter
from typing import Any, Optional

from pydantic import TypeAdapter

from domain.decision import Decision, DecisionMade, StrategyDecision, TradeAction, TradeActionKind
from domain.event_columns import (ColumnBatch, field_type, ids_json, split_listed, strings_json, times_json, uuids_json,
                                  validated_json)
from domain.events import EventMeta, EventValidationError
from domain.ids import uuid_from_int

__all__ = ["HoldDecisions", "field_adapter"]

_HOLD_RATIONALE_LIMIT = 200  # TradeAction.rationale; DecisionMade allows 500


def field_adapter(name: str) -> TypeAdapter:
    """A TypeAdapter of one ``DecisionMade`` field's type (its annotation and constraints)."""
    return _ADAPTERS[name]


_ADAPTERS = {name: TypeAdapter(field_type(DecisionMade, name)) for name in ("occurred_at", "candle_start", "rationale")}
_LIST_OF_TIMES = TypeAdapter(list[field_type(DecisionMade, "occurred_at")])
_INPUT_VALUE = typing.get_args(DecisionMade.model_fields["inputs"].annotation)[1]
_LIST_OF_INPUTS = TypeAdapter(list[_INPUT_VALUE])
_SENTINEL_ID = 0x5E5E5E5E_5E5E_4E5E_9E5E_5E5E5E5E5E5E
_SENTINEL_AT = datetime(1971, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_SENTINEL_START = datetime(1972, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


class HoldDecisions(ColumnBatch):
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
        decided = StrategyDecision(action=self.action_of(self.rationale[k]), strategy=self.strategy, inputs=inputs)
        meta = EventMeta(self.occurred_at[k], self.actor, decision_id, None, self.run_id)
        (made,) = Decision.of(decision_id, meta, decided, self.product, self.candle_start[k], inputs).collect_events()
        return made

    def action_of(self, rationale: str) -> TradeAction:
        """The strategy's action a row records (a HOLD here; ``EntryDecisions`` records entries)."""
        return TradeAction(action=TradeActionKind.HOLD, size_pct=0, rationale=rationale)

    def like(self, inputs: dict[str, Sequence[Any]]) -> HoldDecisions:
        """An empty batch of the same run, strategy, product (and action) over ``inputs``."""
        return HoldDecisions(self.run_id, self.strategy, self.product, inputs)

    @property
    def template_key(self) -> tuple:
        return DecisionMade, self.run_id, self.strategy, self.product, tuple(self.inputs)

    @property
    def merge_key(self) -> tuple:
        return self.template_key, id(self.inputs)  # the rows point into the same inputs

    @classmethod
    def merged(cls, batches: list[HoldDecisions]) -> HoldDecisions:
        first = batches[0]
        made = first.like(first.inputs)
        for batch in batches:
            for name in ("ids", "occurred_at", "candle_start", "rows", "position_quantity", "rationale"):
                getattr(made, name).extend(getattr(batch, name))
        return made

    def probe(self) -> tuple[HoldDecisions, dict[str, bytes]]:
        names = list(self.inputs)
        probe = self.like({name: [f"@@input-{i}@@"] for i, name in enumerate(names)})
        probe.add(_SENTINEL_ID, _SENTINEL_AT, _SENTINEL_START, 0, "@@position@@", "@@rationale@@")
        return probe, {
            "originator_id": uuids_json([_SENTINEL_ID])[0],
            "occurred_at": field_adapter("occurred_at").dump_json(_SENTINEL_AT),
            "candle_start": field_adapter("candle_start").dump_json(_SENTINEL_START),
            "rationale": b'"@@rationale@@"',
            "inputs.position_quantity": b'"@@position@@"',
            **{f"inputs.{name}": b'"@@input-%d@@"' % i for i, name in enumerate(names)},
        }

    # --- validation per column ----------------------------------------------------------------------

    def json_columns(self) -> dict[str, list[bytes]]:
        """Every varying field validated per column, and each value's JSON as ``DecisionMade`` writes it.

        Keys: ``originator_id`` (also the correlation id), ``occurred_at``, ``candle_start``, ``rationale``
        and ``inputs.<name>`` for each input, ``position_quantity`` last. Raises ``EventValidationError``
        naming the field, the row and the value of the first bad value; nothing is returned then.
        """
        out: dict[str, list[bytes]] = {}
        out["originator_id"] = ids_json(self.ids, "DecisionMade")
        for name in ("occurred_at", "candle_start"):
            out[name] = _times_json(getattr(self, name), name)
        texts = self.rationale
        if texts and (set(map(type, texts)) != {str} or max(map(len, texts)) > _HOLD_RATIONALE_LIMIT):
            k = next(k for k, t in enumerate(texts) if type(t) is not str or len(t) > _HOLD_RATIONALE_LIMIT)
            raise EventValidationError("DecisionMade", [(f"rationale (row {k})", texts[k],
                                                         f"a text of at most {_HOLD_RATIONALE_LIMIT} characters")])
        out["rationale"] = strings_json(texts, field_adapter("rationale"))
        rows = self.rows
        contiguous = bool(rows) and rows[-1] - rows[0] == len(rows) - 1 and rows == list(range(rows[0], rows[-1] + 1))
        take = itemgetter(*rows) if len(rows) > 1 else (lambda values: [values[r] for r in rows])
        for name, values in self.inputs.items():
            column = list(values[rows[0]:rows[-1] + 1]) if contiguous else list(take(values))
            out[f"inputs.{name}"] = _inputs_json(column, f"inputs.{name}")
        quantities = self.position_quantity
        if quantities and set(map(type, quantities)) != {str}:
            k = next(k for k, t in enumerate(quantities) if type(t) is not str)
            raise EventValidationError("DecisionMade", [(f"inputs.position_quantity (row {k})", quantities[k], "not a text")])
        out["inputs.position_quantity"] = strings_json(quantities, _INPUT_ADAPTER)
        return out


_INPUT_ADAPTER = TypeAdapter(_INPUT_VALUE)
_FLOATS = TypeAdapter(list[Optional[float]])
_BOOL_JSON = {True: b"true", False: b"false"}


def _times_json(values: list, field: str) -> list[bytes]:
    return times_json(values, field, _LIST_OF_TIMES, "DecisionMade")


def _inputs_json(values: list, field: str) -> list[bytes]:
    kinds = set(map(type, values))
    if kinds <= {bool}:  # flags: valid as they are
        return list(map(_BOOL_JSON.__getitem__, values))
    if kinds <= {float, type(None)}:  # numbers: valid as they are, written as pydantic writes a float
        return split_listed(_FLOATS.dump_json(values))
    return split_listed(validated_json(_LIST_OF_INPUTS, values, field, "DecisionMade"))
