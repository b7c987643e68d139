"""Market data: one closed candle per (product, granularity, start).

Each candle is its own short stream whose id is derived from its key, so the
same candle recorded twice is recognised (a no-op), and a different candle for
the same start is either refused or recorded as a ``CandleCorrected`` event:
never a silent overwrite.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import ValidationError, model_validator

from domain.aggregate import Aggregate, StartingEvent
from domain.events import EVENT_NAMESPACE, DomainError, EventMeta, FieldProblem, NonNegative, Positive, UtcDatetime
from domain.ids import uuid_from_int

GRANULARITIES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
}

OHLCV = ("open", "high", "low", "close", "volume")
_STEP_SECONDS = {name: int(delta.total_seconds()) for name, delta in GRANULARITIES.items()}


def granularity_delta(granularity: str) -> timedelta:
    """The bar length of a granularity name; refuses unknown names."""
    try:
        return GRANULARITIES[granularity]
    except KeyError:
        raise FieldProblem("granularity", granularity, f"must be one of {', '.join(GRANULARITIES)}") from None


def candle_id(product: str, granularity: str, start: datetime) -> uuid.UUID:
    """The stream id of one candle: derived from its key, the same everywhere.

    A version-8 (custom) UUID whose first 48 bits are the start in epoch
    seconds and whose rest comes from a SHA-1 of the key: deterministic like
    uuid5, but time-ordered, so a batch of consecutive candles lands on a few
    adjacent index pages instead of a thousand random ones (the random layout
    made SQLite inserts two to four times slower as the log grew).
    """
    seconds = int(start.timestamp())
    digest = hashlib.sha1(b"%s%s:%s:%d" % (_CANDLE_KEY_PREFIX, product.encode(), granularity.encode(), seconds)).digest()
    value = (seconds & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(digest[:10], "big")
    value = (value & _CLEAR_VERSION_VARIANT) | _VERSION_8_VARIANT
    return uuid_from_int(value)


_CANDLE_KEY_PREFIX = f"{EVENT_NAMESPACE}:candle:".encode()
_CLEAR_VERSION_VARIANT = ~(0xF << 76) & ~(0x3 << 62)
_VERSION_8_VARIANT = (0x8 << 76) | (0x2 << 62)


class _CandleValues(StartingEvent):
    product: str
    granularity: str
    start: UtcDatetime
    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: NonNegative

    @model_validator(mode="after")
    def _shape(self):
        v = self.__dict__  # the checks run once per candle event: plain dict reads
        granularity = v["granularity"]
        step = _STEP_SECONDS.get(granularity)
        if step is None:
            raise FieldProblem("granularity", granularity, f"must be one of {', '.join(GRANULARITIES)}")
        if int(v["start"].timestamp()) % step:
            raise FieldProblem("start", v["start"].isoformat(), f"is not aligned to the {granularity} grid")
        high, low, open_, close = v["high"], v["low"], v["open"], v["close"]
        if high < low:
            raise FieldProblem("high", high, f"is below low {low}")
        if high < open_ or high < close:
            raise FieldProblem("high", high, f"is below open {open_} or close {close}")
        if low > open_ or low > close:
            raise FieldProblem("low", low, f"is above open {open_} or close {close}")
        if not v["product"]:
            raise FieldProblem("product", v["product"], "must not be empty")
        return self

    def values(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return (self.open, self.high, self.low, self.close, self.volume)


class CandleClosed(_CandleValues):
    """A bar closed: its OHLCV as the venue reported it."""

    @classmethod
    def _aggregate_class(cls):
        return CandleRecord

    def apply(self, record: CandleRecord) -> None:
        record.product = self.product
        record.granularity = self.granularity
        record.start = self.start
        record.values = self.values()
        record.corrections = 0


class CandleCorrected(_CandleValues):
    """The venue revised a bar already recorded; carries the values it replaces."""

    previous_open: Positive
    previous_high: Positive
    previous_low: Positive
    previous_close: Positive
    previous_volume: NonNegative

    def mutate(self, aggregate):  # a correction continues a stream, never starts one
        return super(StartingEvent, self).mutate(aggregate)

    def apply(self, record: CandleRecord) -> None:
        record.values = self.values()
        record.corrections += 1


@dataclass(frozen=True)
class Candle:
    """A candle as it arrives from a feed or file, before it is an event."""

    product: str
    granularity: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def end(self) -> datetime:
        return self.start + granularity_delta(self.granularity)

    def values(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return (self.open, self.high, self.low, self.close, self.volume)


class CandleConflict(DomainError):
    """A different candle was offered for a start already recorded."""

    def __init__(self, candle: Candle, recorded: tuple[Decimal, ...]):
        self.candle = candle
        self.recorded = recorded
        diffs = [
            f"{name} recorded {old} offered {new}"
            for name, old, new in zip(OHLCV, recorded, candle.values())
            if old != new
        ]
        super().__init__(
            f"candle {candle.product} {candle.granularity} {candle.start.isoformat()} differs from "
            f"the recorded one ({'; '.join(diffs)})"
        )


class CandleRecord(Aggregate):
    """The recorded state of one candle (its latest values and correction count)."""

    product: str
    granularity: str
    start: datetime
    values: tuple[Decimal, ...]
    corrections: int

    @staticmethod
    def closed_event(candle: Candle, meta: EventMeta, stream_id: uuid.UUID | None = None) -> CandleClosed:
        """The first event of a candle's stream (built without loading anything)."""
        return CandleClosed.build(
            stream_id or candle_id(candle.product, candle.granularity, candle.start),
            1,
            meta,
            product=candle.product,
            granularity=candle.granularity,
            start=candle.start,
            open=candle.open,
            high=candle.high,
            low=candle.low,
            close=candle.close,
            volume=candle.volume,
        )

    @staticmethod
    def closed_events(keyed: Iterable[tuple[uuid.UUID, Candle]], meta: EventMeta) -> list[CandleClosed]:
        """``closed_event`` of each (stream id, candle), dated at the candle's close (the rest of
        the envelope from ``meta``): the bulk form, validated the same, without a meta per candle."""
        validate = CandleClosed.__pydantic_validator__.validate_python
        actor, correlation_id, causation_id, run_id = meta.actor, meta.correlation_id, meta.causation_id, meta.run_id
        events = []
        for stream_id, candle in keyed:
            fields = {
                "originator_id": stream_id, "originator_version": 1, "occurred_at": candle.end, "actor": actor,
                "correlation_id": correlation_id, "causation_id": causation_id, "run_id": run_id,
                "product": candle.product, "granularity": candle.granularity, "start": candle.start,
                "open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close,
                "volume": candle.volume,
            }
            try:
                events.append(validate(fields))
            except ValidationError:  # build it the ordinary way, which raises the usual refusal
                CandleRecord.closed_event(
                    candle, EventMeta(candle.end, actor, correlation_id, causation_id, run_id), stream_id
                )
                raise
        return events

    def correct(self, candle: Candle, meta: EventMeta) -> bool:
        """Record a revision; returns False when the values are the same (no-op)."""
        if candle.values() == self.values:
            return False
        old = self.values
        self._trigger(
            CandleCorrected,
            meta,
            product=self.product,
            granularity=self.granularity,
            start=self.start,
            open=candle.open,
            high=candle.high,
            low=candle.low,
            close=candle.close,
            volume=candle.volume,
            previous_open=old[0],
            previous_high=old[1],
            previous_low=old[2],
            previous_close=old[3],
            previous_volume=old[4],
        )
        return True
