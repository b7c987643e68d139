"""Entries a halt refuses, as columns: the ``DecisionMade`` of each entry and the ``RiskAssessed`` refusing it.

While a backtest waits for an operator (the drawdown breaker's halt: flat, and nothing in a backtest lifts it),
every entry signal of the rules is decided and refused: a ``DecisionMade`` (LONG or SHORT, the strategy's
size, take-profit and stop-loss, the inputs and the rationale of that candle) and, as version 2 of the same
stream, a ``RiskAssessed`` refusal whose terms (rule, message, numbers) stay the same while the run is flat and
halted. ``EntryDecisions`` keeps the decisions as columns the way ``HoldDecisions`` keeps the HOLDs (the same
columns, validated per column, with the entry's terms constant per batch); ``RiskRefusals`` keeps the refusals
(the decision ids and times vary, the verdict is the batch's). Each is stored through the mapper's template of
its first row, checked against the one-event path (application/stored_rows.py), and ``event(k)`` is row ``k``
as the model the trading loop makes (``Decision.of``, ``Decision.assess``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from domain.decision import RiskAssessed, TradeAction, TradeActionKind
from domain.event_columns import ColumnBatch, field_type, ids_json, times_json, uuids_json
from domain.events import EventMeta, FieldProblem
from domain.hold_decisions import HoldDecisions
from domain.ids import uuid_from_int
from domain.risk_terms import RiskVerdict

__all__ = ["EntryDecisions", "RiskRefusals"]

_ENTRIES = (TradeActionKind.LONG, TradeActionKind.SHORT)
_SENTINEL_ID = 0x5E5E5E5E_5E5E_4E5E_9E5E_5E5E5E5E5E5E
_SENTINEL_AT = datetime(1971, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_TIME = TypeAdapter(field_type(RiskAssessed, "occurred_at"))
_LIST_OF_TIMES = TypeAdapter(list[field_type(RiskAssessed, "occurred_at")])


class EntryDecisions(HoldDecisions):
    """``DecisionMade`` entries (LONG or SHORT) of one run, strategy and product with the same terms, as columns.

    ``action`` gives the terms every row shares (kind, size, take-profit, stop-loss); each row's rationale is its
    own. The columns are ``HoldDecisions``'s and are validated the same way.
    """

    def __init__(self, run_id: uuid.UUID, strategy: str, product: str, inputs: dict[str, Sequence[Any]],
                 action: TradeAction):
        if action.action not in _ENTRIES:
            raise FieldProblem("action", action.action, "an entry batch holds LONG or SHORT decisions")
        super().__init__(run_id, strategy, product, inputs)
        self.terms = action

    def action_of(self, rationale: str) -> TradeAction:
        a = self.terms
        return TradeAction(action=a.action, size_pct=a.size_pct, take_profit_pct=a.take_profit_pct,
                           stop_loss_pct=a.stop_loss_pct, rationale=rationale)

    def like(self, inputs: dict[str, Sequence[Any]]) -> EntryDecisions:
        return EntryDecisions(self.run_id, self.strategy, self.product, inputs, self.terms)

    @property
    def template_key(self) -> tuple:
        a = self.terms  # the floats by their repr: 0.0 and -0.0 are written differently
        return (*super().template_key, a.action, repr(a.size_pct), repr(a.take_profit_pct), repr(a.stop_loss_pct))


class RiskRefusals(ColumnBatch):
    """``RiskAssessed`` refusals of one run with the same verdict, as columns: the refused decisions' ids and times.

    Each row is version 2 of its decision's stream (the decision's ``DecisionMade`` comes first), recorded by
    the actor ``risk`` with the decision as its correlation, as ``TradingLoop`` records a verdict.
    """

    version = 2

    def __init__(self, run_id: uuid.UUID, verdict: RiskVerdict):
        if verdict.approved:
            raise FieldProblem("approved", verdict.approved, "a batch of refusals holds refused verdicts only")
        if verdict.approved_size_pct > verdict.requested_size_pct:  # as Decision.assess refuses it
            raise FieldProblem("approved_size_pct", verdict.approved_size_pct,
                               f"exceeds the requested {verdict.requested_size_pct}")
        self.run_id = run_id
        self.verdict = verdict
        self.ids: list[int] = []  # the refused decisions' ids as 128-bit integers
        self.occurred_at: list[datetime] = []

    def add(self, decision_id: int, occurred_at: datetime) -> None:
        """The refusal of one more decision (its id as an integer), at ``occurred_at``."""
        self.ids.append(decision_id)
        self.occurred_at.append(occurred_at)

    def event(self, k: int) -> RiskAssessed:
        """Row ``k`` as the event ``Decision.assess`` makes (validated, one at a time)."""
        decision_id = uuid_from_int(self.ids[k])
        meta = EventMeta(self.occurred_at[k], "risk", decision_id, None, self.run_id)
        return RiskAssessed.build(decision_id, self.version, meta, **self.verdict.event_fields())

    @property
    def template_key(self) -> tuple:
        v = self.verdict  # Decimals by their text: 25 and 25.0 are written differently
        numbers = tuple((name, type(value).__name__, str(value)) for name, value in v.numbers.items())
        return (RiskAssessed, self.run_id, v.approved, v.rule, _text(v.requested_size_pct), _text(v.approved_size_pct),
                v.message, numbers)

    @classmethod
    def merged(cls, batches: list[RiskRefusals]) -> RiskRefusals:
        made = cls(batches[0].run_id, batches[0].verdict)
        for batch in batches:
            made.ids.extend(batch.ids)
            made.occurred_at.extend(batch.occurred_at)
        return made

    def probe(self) -> tuple[RiskRefusals, dict[str, bytes]]:
        probe = RiskRefusals(self.run_id, self.verdict)
        probe.add(_SENTINEL_ID, _SENTINEL_AT)
        return probe, {"originator_id": uuids_json([_SENTINEL_ID])[0], "occurred_at": _TIME.dump_json(_SENTINEL_AT)}

    def json_columns(self) -> dict[str, list[bytes]]:
        """The ids (also the correlation ids) and the times, validated per column, as JSON; an
        ``EventValidationError`` naming the field, the row and the value of the first bad one."""
        return {"originator_id": ids_json(self.ids, "RiskAssessed"),
                "occurred_at": times_json(self.occurred_at, "occurred_at", _LIST_OF_TIMES, "RiskAssessed")}


def _text(value: Any) -> str:
    return f"{type(value).__name__}:{value}" if not isinstance(value, Decimal) else str(value)
