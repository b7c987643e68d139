"""The stored rows of a batch of events as columns (``domain.event_columns.ColumnBatch``: a backtest's HOLD
decisions, an import's new candles), written as the store's own mapper writes each event.

The store's mapper encodes the batch's probe, a one-row batch whose varying fields hold sentinels;
where their JSON appears, the stored state gets a slot, and each row fills the slots with its columns'
JSON (``json_columns``, validated per column). Nothing here knows the stored format: it follows
whatever the mapper writes. The first batch of each transaction also has its first row encoded the
one-event way and compared; if they ever differ, batches are encoded one event at a time from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from domain.event_columns import ColumnBatch
from domain.events import DomainEvent
from domain.ids import uuid_from_int

Encode = Callable[[DomainEvent], tuple[Any, int, str, bytes]]
"""An event as its stored row: (originator id as stored, version, topic, state)."""


class StoredRows:
    """Stored rows of column batches for one mapper (``encode``); one template per ``template_key``."""

    def __init__(self, encode: Encode):
        self._encode = encode
        self._templates: dict[tuple, tuple[list[bytes], list[str], str, bool]] = {}
        self.fallbacks = 0  # how often a template did not match the one-event encoding

    def rows_in_order(self, items: Sequence[DomainEvent | ColumnBatch]) -> list[tuple[Any, int, str, bytes]]:
        """The rows of events and batches, in order; the batches that can be are encoded as one (``merged``),
        each such group checked against the one-event encoding. Everything is validated before it returns."""
        groups: dict[tuple, list[ColumnBatch]] = {}
        for item in items:
            if isinstance(item, ColumnBatch):
                groups.setdefault(item.merge_key, []).append(item)
        encoded: dict[int, list[tuple[Any, int, str, bytes]]] = {}
        for group in groups.values():
            rows = self.rows(group[0] if len(group) == 1 else type(group[0]).merged(group))
            at = 0
            for batch in group:
                encoded[id(batch)] = rows[at:at + len(batch)]
                at += len(batch)
        out: list[tuple[Any, int, str, bytes]] = []
        encode = self._encode
        for item in items:
            if isinstance(item, ColumnBatch):
                out.extend(encoded[id(item)])
            else:
                out.append(encode(item))
        return out

    def rows(self, batch: ColumnBatch, check: bool = True) -> list[tuple[Any, int, str, bytes]]:
        """The batch's rows, in order; raises ``EventValidationError`` (nothing encoded) on a bad value.

        ``check``: encode the first row the one-event way too and compare (the caller does it for the
        first batch of each transaction at least)."""
        if not len(batch):
            return []
        if self.fallbacks:  # a template once differed from the mapper: one event at a time from then on
            return [self._encode(event) for event in batch.events()]
        columns = batch.json_columns()  # validates every column first
        try:
            pieces, slots, topic, stored_as_text = self._template(batch)
        except _NoTemplate:  # the mapper writes the probe in a form with no slots to find (e.g. not as JSON)
            self.fallbacks += 1
            return [self._encode(event) for event in batch.events()]
        # each state joined from the template's pieces and the row's values, in C (no format to parse per row)
        parts: list[Any] = []
        for piece, slot in zip(pieces, slots):
            if piece:
                parts.append(repeat(piece))
            parts.append(columns[slot])
        if pieces[-1]:
            parts.append(repeat(pieces[-1]))
        states = list(map(b"".join, zip(*parts)))
        if check:
            first = self._encode(batch.event(0))
            if first[3] != states[0] or first[2] != topic:
                self.fallbacks += 1
                return [self._encode(event) for event in batch.events()]
        version = batch.version
        if stored_as_text:  # the stream id as stored: 32 hex digits
            digits = ("%032x" * len(states)) % tuple(batch.ids)
            return [(digits[i:i + 32], version, topic, state) for i, state in zip(range(0, len(digits), 32), states)]
        return [(uuid_from_int(n), version, topic, state) for n, state in zip(batch.ids, states)]

    def _template(self, batch: ColumnBatch) -> tuple[list[bytes], list[str], str, bool]:
        key = batch.template_key
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = _template_of(batch, self._encode)
        return found


class _NoTemplate(Exception):
    """The mapper's stored form of the probe has no place for a varying field."""


def _template_of(batch: ColumnBatch, encode: Encode) -> tuple[list[bytes], list[str], str, bool]:
    """The stored state of one of the batch's events cut at each varying field (the pieces around the slots,
    one more than the slots), the slots' column names in order, the topic, and whether the stream id is
    stored as text."""
    probe, fragments = batch.probe()
    oid, version, topic, state = encode(probe.event(0))
    if version != batch.version:
        raise _NoTemplate(f"a column batch's events are at version {batch.version} of their streams, the mapper wrote {version}")
    places = []
    for slot, fragment in fragments.items():
        at = state.find(fragment)
        if at < 0:
            raise _NoTemplate(f"the stored {topic} does not hold its {slot} as {fragment!r}")
        while at >= 0:
            places.append((at, slot, fragment))
            at = state.find(fragment, at + len(fragment))
    places.sort()
    pieces, slots, done = [], [], 0
    for at, slot, fragment in places:
        pieces.append(state[done:at])
        slots.append(slot)
        done = at + len(fragment)
    pieces.append(state[done:])
    return pieces, slots, topic, isinstance(oid, str)
