"""New candles of one product and bar size as columns: the ``CandleClosed`` events of an import, validated per
batch (``domain.event_columns``).

Each column is validated with the type of ``CandleClosed``'s own field (prices > 0, volume >= 0, finite, UTC
times) and every row with the event's own shape check (the bar grid, high and low around open and close);
the envelope (actor, correlation, causation, run) is the same for every row and validated once, in the
batch's probe. ``event(k)`` is ``CandleRecord.closed_event`` of row ``k``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

from pydantic import TypeAdapter

from domain.event_columns import ColumnBatch, field_type, split_listed, times_json, uuids_json, validated_json
from domain.events import EventMeta, EventValidationError, FieldProblem
from domain.ids import uuid_from_int
from domain.market import Candle, CandleClosed, CandleRecord, granularity_delta

__all__ = ["ClosedCandles"]

_VALUES = ("open", "high", "low", "close", "volume")
_LISTS = {name: TypeAdapter(list[field_type(CandleClosed, name)]) for name in _VALUES}
_ONE = {name: TypeAdapter(field_type(CandleClosed, name)) for name in (*_VALUES, "start")}
_LIST_OF_TIMES = TypeAdapter(list[field_type(CandleClosed, "start")])
_SHAPE = CandleClosed.__pydantic_decorators__.model_validators["_shape"].func  # the event's own cross-field check
_SENTINEL_ID = 0x5E5E5E5E_5E5E_8E5E_9E5E_5E5E5E5E5E5E
_SENTINEL_START = datetime(1971, 1, 1, tzinfo=timezone.utc)  # on every bar size's grid
_SENTINEL_VALUES = dict(zip(_VALUES, map(Decimal, ("300.03", "400.04", "100.01", "200.02", "5.55"))))


class ClosedCandles(ColumnBatch):
    """``CandleClosed`` events of candles of one product and bar size, each dated at its close, as columns."""

    def __init__(self, stream_ids: Sequence[uuid.UUID], candles: Sequence[Candle], meta: EventMeta):
        if not candles:
            raise ValueError("no candles")
        first = candles[0]
        self.product, self.granularity = first.product, first.granularity
        if any(c.product != self.product or c.granularity != self.granularity for c in candles):
            raise ValueError("the candles of a batch are of one product and bar size")
        self.ids = [u.int for u in stream_ids]
        self.candles = list(candles)
        self.meta = meta

    @property
    def template_key(self) -> tuple:
        m = self.meta
        return CandleClosed, self.product, self.granularity, m.actor, m.correlation_id, m.causation_id, m.run_id

    @classmethod
    def merged(cls, batches: list[ClosedCandles]) -> ClosedCandles:
        return cls([uuid_from_int(n) for b in batches for n in b.ids], [c for b in batches for c in b.candles],
                   batches[0].meta)

    def event(self, k: int) -> CandleClosed:
        candle, m = self.candles[k], self.meta
        return CandleRecord.closed_event(candle, EventMeta(candle.end, m.actor, m.correlation_id, m.causation_id, m.run_id),
                                         uuid_from_int(self.ids[k]))

    def probe(self) -> tuple[ClosedCandles, dict[str, bytes]]:
        candle = Candle(self.product, self.granularity, _SENTINEL_START, **_SENTINEL_VALUES)
        probe = ClosedCandles([uuid_from_int(_SENTINEL_ID)], [candle], self.meta)
        return probe, {
            "originator_id": uuids_json([_SENTINEL_ID])[0],
            "occurred_at": _ONE["start"].dump_json(candle.end),
            "start": _ONE["start"].dump_json(_SENTINEL_START),
            **{name: _ONE[name].dump_json(value) for name, value in _SENTINEL_VALUES.items()},
        }

    def json_columns(self) -> dict[str, list[bytes]]:
        """The varying fields validated (per column, then each row's shape), as JSON (see the module)."""
        candles = self.candles
        if set(map(type, self.ids)) != {int}:
            raise EventValidationError("CandleClosed", [("originator_id", self.ids, "not 128-bit UUIDs")])
        bar = granularity_delta(self.granularity)
        starts = [c.start for c in candles]
        out = {"originator_id": uuids_json(self.ids),
               "start": times_json(starts, "start", _LIST_OF_TIMES, "CandleClosed"),
               "occurred_at": times_json([s + bar for s in starts], "occurred_at", _LIST_OF_TIMES, "CandleClosed")}
        columns = {name: [getattr(c, name) for c in candles] for name in _VALUES}
        for name, values in columns.items():
            out[name] = split_listed(validated_json(_LISTS[name], values, name, "CandleClosed"))
        # Each row's shape through one object whose fields (its __dict__, all _SHAPE reads) are refilled per row.
        row = _Row()
        fields = row.__dict__
        fields.update(product=self.product, granularity=self.granularity)
        refill = fields.update
        for k, values in enumerate(zip(starts, *columns.values())):
            refill(zip(_ROW_FIELDS, values))
            try:
                _SHAPE(row)
            except FieldProblem as problem:
                raise EventValidationError("CandleClosed", [(f"{problem.field} (row {k})", problem.value, problem.why)]) \
                    from None
        return out


class _Row:
    """One row's fields as _SHAPE reads them (``self.__dict__``)."""


_ROW_FIELDS = ("start", *_VALUES)
