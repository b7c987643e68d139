"""The hash chain's link formula (versions 1 and 2; see infrastructure/eventstore/chain.py for the chain itself).

``chain_link`` is the definition; ``next_links`` and ``_stored_link`` compute it inlined (one hash call per
event) for the columns as the recorders store them, for appends and ``verify_chain``
(tests/unit/test_chain_links.py holds them equal for every column type).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

GENESIS = bytes(32)
CHAIN_VERSION = 2
_V2 = b"\x02"
_HEX32 = re.compile(r"[0-9a-f]{32}")


def _field(value: Any) -> bytes:
    """One column as stored: type tag, 8-byte length, bytes (see the module docstring)."""
    if isinstance(value, str):
        tag, data = b"t", value.encode("utf-8", "surrogatepass")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        tag, data = b"b", bytes(value)
    elif isinstance(value, bool):  # never stored by the recorders; keep it apart from 0/1
        tag, data = b"?", b"%d" % value
    elif isinstance(value, int):
        tag, data = b"i", b"%d" % value
    elif isinstance(value, UUID):  # PostgreSQL's uuid column: the text SQLite stores for it
        tag, data = b"t", value.hex.encode()
    elif isinstance(value, float):
        tag, data = b"r", repr(value).encode()
    elif value is None:
        tag, data = b"n", b""
    else:
        tag, data = b"x", repr(value).encode()
    return tag + len(data).to_bytes(8, "big") + data


def chain_link(previous: bytes, notification_id: int, originator_id: Any, version: Any, topic: Any, state: Any) -> bytes:
    """One version 2 link of the chain over the columns exactly as stored (see the module docstring)."""
    h = hashlib.sha256(previous)
    h.update(notification_id.to_bytes(8, "big"))
    h.update(_field(originator_id) + _field(version) + _field(topic) + _field(state))
    return _V2 + h.digest()


def _stored_link(previous: bytes, nid: int, oid: Any, version: Any, topic: Any, state: Any,
                 topic_fields: dict[str, bytes]) -> bytes | None:
    """``chain_link`` inlined (one hash call) for the columns as the recorders store them (oid as text or uuid,
    integer version, text topic, blob state); None for any other types (then ``chain_link`` itself)."""
    kind = type(oid)
    if (kind is str or kind is UUID) and type(version) is int and type(topic) is str and type(state) is bytes:
        oid_bytes = oid.hex.encode() if kind is UUID else oid.encode("utf-8", "surrogatepass")
        topic_field = topic_fields.get(topic)
        if topic_field is None:
            topic_field = topic_fields[topic] = _field(topic)
        version_bytes = b"%d" % version
        return _V2 + hashlib.sha256(b"%s%st%s%si%s%s%sb%s%s" % (
            previous, nid.to_bytes(8, "big"), len(oid_bytes).to_bytes(8, "big"), oid_bytes,
            len(version_bytes).to_bytes(8, "big"), version_bytes, topic_field, len(state).to_bytes(8, "big"),
            state)).digest()
    return None


def next_links(previous: bytes, ids: Sequence[int], rows: Sequence[tuple[Any, Any, Any, Any]]) -> list[bytes]:
    """The links of ``rows`` (oid, version, topic, state as stored) at notification ``ids``, after ``previous``.

    ``_stored_link`` inlined once more: a row of the stored types costs one join and one hash call, its
    version's and topic's fields built once per batch (a column batch's rows share both)."""
    middles: dict[tuple[int, str], bytes] = {}
    topic_fields: dict[str, bytes] = {}
    links: list[bytes] = []
    append, sha256, uuid_type, join = links.append, hashlib.sha256, UUID, b"".join
    for nid, (oid, version, topic, state) in zip(ids, rows):
        kind = type(oid)
        if (kind is str or kind is uuid_type) and type(version) is int and type(topic) is str and type(state) is bytes:
            oid_bytes = oid.encode("utf-8", "surrogatepass") if kind is str else oid.hex.encode()
            middle = middles.get((version, topic))
            if middle is None:
                middle = middles[version, topic] = _field(version) + _field(topic)
            previous = _V2 + sha256(join((previous, nid.to_bytes(8, "big"), b"t", len(oid_bytes).to_bytes(8, "big"),
                                          oid_bytes, middle, b"b", len(state).to_bytes(8, "big"), state))).digest()
        else:
            previous = (_stored_link(previous, nid, oid, version, topic, state, topic_fields)
                        or chain_link(previous, nid, oid, version, topic, state))
        append(previous)
    return links


def chain_link_v1(previous: bytes, notification_id: int, originator_id: Any, version: Any, topic: Any, state: Any) -> bytes | None:
    """The version 1 link of a row, or None when the row is not what the version 1 writer stored."""
    if isinstance(originator_id, UUID):
        oid = originator_id.hex
    elif isinstance(originator_id, str) and _HEX32.fullmatch(originator_id):
        oid = originator_id
    else:
        return None
    if type(version) is not int or not isinstance(topic, str) or not isinstance(state, (bytes, bytearray, memoryview)):
        return None
    h = hashlib.sha256(previous)
    h.update(b"%d|%s|%d|%s|" % (notification_id, oid.encode(), version, topic.encode()))
    h.update(state)
    return h.digest()


def link_matches(previous: bytes, notification_id: int, row: tuple, link: bytes) -> bool | None:
    """Whether ``link`` is the stored link of ``row`` (oid, version, topic, state) after ``previous``.

    Returns True or False for a version 2 link, and None when a version 1 link
    matches (the caller decides whether version 1 is still allowed there).
    """
    if len(link) == 33 and link[:1] == _V2:
        return chain_link(previous, notification_id, *row) == link
    if len(link) == 32 and chain_link_v1(previous, notification_id, *row) == link:
        return None
    return False


def link_verdict(previous: bytes, notification_id: int, oid: object, version: int, topic: str, state: bytes, link: bytes,
                 seen_v2: bool, topic_fields: dict[str, bytes]) -> bool | None:
    """Whether the stored ``link`` of a row follows ``previous``: True for a version 2 link that matches, None for a
    version 1 link that matches while no version 2 link came before it (``seen_v2``), False otherwise (a version 1
    link after version 2 ones is a rewrite with the weaker formula). ``topic_fields``: the per-topic part of the
    hashed text, kept by the caller across rows. One judgment for ``verify_chain`` and the restore's check."""
    if len(link) == 33 and link[:1] == _V2:
        expected = (_stored_link(previous, notification_id, oid, version, topic, state, topic_fields)
                    or chain_link(previous, notification_id, oid, version, topic, state))
        return expected == link
    matched = link_matches(previous, notification_id, (oid, version, topic, state), link)
    return False if matched is None and seen_v2 else matched
