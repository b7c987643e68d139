"""The stored rows of a batch of HOLD decisions (``domain.hold_decisions.HoldDecisions``), written as the
store's own mapper writes each ``DecisionMade``.

The store's mapper encodes one prototype event whose varying fields hold sentinels; where their JSON
appears, the stored state gets a slot, and each row fills the slots with its columns' JSON
(``HoldDecisions.json_columns``, validated per column). Nothing here knows the stored format: it
follows whatever the mapper writes. Every batch's first row is also encoded the one-event way and
compared; if they ever differ, the batch is encoded one event at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from domain.events import DomainEvent
from domain.hold_decisions import HoldDecisions, field_adapter
from domain.ids import uuid_from_int

Encode = Callable[[DomainEvent], tuple[Any, int, str, bytes]]
"""An event as its stored row: (originator id as stored, version, topic, state)."""

_SENTINEL_ID = 0x5E5E5E5E_5E5E_4E5E_9E5E_5E5E5E5E5E5E
_SENTINEL_AT = datetime(1971, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
_SENTINEL_START = datetime(1972, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


class DecisionRows:
    """Stored rows of ``HoldDecisions`` batches for one mapper (``encode``); one template per input layout."""

    def __init__(self, encode: Encode):
        self._encode = encode
        self._templates: dict[tuple[str, ...], tuple[bytes, list[str], str, bool]] = {}
        self.fallbacks = 0  # how often the template did not match the one-event encoding

    def rows(self, batch: HoldDecisions, check: bool = True) -> list[tuple[Any, int, str, bytes]]:
        """The batch's rows, in order; raises ``EventValidationError`` (nothing encoded) on a bad value.

        ``check``: encode the first row the one-event way too and compare (the caller does it for the
        first batch of each transaction at least)."""
        if not len(batch):
            return []
        if self.fallbacks:  # the template once differed from the mapper: one event at a time from then on
            return [self._encode(event) for event in batch.events()]
        columns = batch.json_columns()  # validates every column first
        template, slots, topic, stored_as_text = self._template(batch)
        states = [template % values for values in zip(*(columns[slot] for slot in slots))]
        if check:
            first = self._encode(batch.event(0))
            if first[3] != states[0] or first[2] != topic:
                self.fallbacks += 1
                return [self._encode(event) for event in batch.events()]
        if stored_as_text:  # the stream id as stored: 32 hex digits
            digits = ("%032x" * len(states)) % tuple(batch.ids)
            return [(digits[i:i + 32], 1, topic, state) for i, state in zip(range(0, len(digits), 32), states)]
        return [(uuid_from_int(n), 1, topic, state) for n, state in zip(batch.ids, states)]

    def _template(self, batch: HoldDecisions) -> tuple[bytes, list[str], str, bool]:
        names = tuple(batch.inputs)
        found = self._templates.get(names)
        if found is None:
            found = self._templates[names] = _template_of(batch, self._encode)
        return found


def _template_of(batch: HoldDecisions, encode: Encode) -> tuple[bytes, list[str], str, bool]:
    """The stored state of a HOLD decision with a ``%s`` slot for each varying field, the slots' column names
    in order, the topic, and whether the stream id is stored as text."""
    names = list(batch.inputs)
    probe = HoldDecisions(batch.run_id, batch.strategy, batch.product,
                          {name: [f"@@input-{i}@@"] for i, name in enumerate(names)})
    probe.add(_SENTINEL_ID, _SENTINEL_AT, _SENTINEL_START, 0, "@@position@@", "@@rationale@@")
    oid, version, topic, state = encode(probe.event(0))
    fragments = {
        "originator_id": probe.json_columns()["originator_id"][0],
        "occurred_at": field_adapter("occurred_at").dump_json(_SENTINEL_AT),
        "candle_start": field_adapter("candle_start").dump_json(_SENTINEL_START),
        "rationale": b'"@@rationale@@"',
        "inputs.position_quantity": b'"@@position@@"',
        **{f"inputs.{name}": b'"@@input-%d@@"' % i for i, name in enumerate(names)},
    }
    if version != 1:
        raise ValueError(f"a HOLD decision starts its stream at version 1, the mapper wrote {version}")
    places = []
    for slot, fragment in fragments.items():
        at = state.find(fragment)
        if at < 0:
            raise ValueError(f"the stored DecisionMade does not hold its {slot} as {fragment!r}")
        while at >= 0:
            places.append((at, slot, fragment))
            at = state.find(fragment, at + len(fragment))
    places.sort()
    template, slots, done = [], [], 0
    for at, slot, fragment in places:
        template.append(state[done:at].replace(b"%", b"%%"))
        template.append(b"%s")
        slots.append(slot)
        done = at + len(fragment)
    template.append(state[done:].replace(b"%", b"%%"))
    return b"".join(template), slots, topic, isinstance(oid, str)
