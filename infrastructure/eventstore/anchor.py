"""Signed anchors of the chain head: what reveals a cut tail, a rollback or a rewritten history.

The hash chain finds an edit inside the log, but someone able to rewrite the
events and chain tables can delete the newest events (with their links) or
rebuild the whole chain over a forged history. An anchor is a checkpoint kept
outside the store: (notification id, chain head there, time), signed with
HMAC-SHA256 under a key from a secret setting that never enters the store.
A log that still holds the anchor's id with the same link extends it; a log
that ends before it was cut or rolled back; a different link there is a
rewritten (forked) history.

    {"format": "tradecore-anchor", "version": 1, "notification_id": 153,
     "chain_head": "02ab...", "created_at": "2026-12-06T17:00:00+00:00",
     "store": "postgresql://bot@db:5432/trading", "key_id": "3f2a...", "signature": "9c1d..."}

``key_id`` (a hash of the key, not the key) says which key signed it, so a
verifier holding another key reports that instead of "forged".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

ANCHOR_FORMAT = "tradecore-anchor"
ANCHOR_VERSION = 1


class AnchorProblem(Exception):
    """An anchor cannot be trusted or read (bad JSON, wrong key, forged signature); the message says which."""


def key_id(key: bytes) -> str:
    """A short public name of the signing key (never the key itself)."""
    return hashlib.sha256(b"tradecore-anchor-key|" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Anchor:
    """A signed checkpoint of the chain head (see the module docstring)."""

    notification_id: int
    chain_head: str
    created_at: str
    store: str
    key_id: str
    signature: str = ""
    format: str = ANCHOR_FORMAT
    version: int = ANCHOR_VERSION

    def _signed_part(self) -> bytes:
        data = asdict(self)
        data.pop("signature")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def to_bytes(self) -> bytes:
        """The anchor as JSON (one object, trailing newline)."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode() + b"\n"

    def describe(self, where: str) -> str:
        return f"anchor {where} (notification {self.notification_id}, written {self.created_at})"


def sign_anchor(notification_id: int, chain_head: str, created_at: datetime, store: str, key: bytes) -> Anchor:
    """A new anchor of ``chain_head`` at ``notification_id``, signed with ``key``."""
    if not key:
        raise AnchorProblem("the anchor key is empty")
    unsigned = Anchor(notification_id, chain_head, created_at.isoformat(), store, key_id(key))
    signature = hmac.new(key, unsigned._signed_part(), hashlib.sha256).hexdigest()
    return Anchor(notification_id, chain_head, unsigned.created_at, store, unsigned.key_id, signature)


def read_anchor(data: bytes, where: str, key: bytes) -> Anchor:
    """Parse an anchor and check its signature with ``key``; AnchorProblem says what is wrong."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != ANCHOR_FORMAT:
            raise ValueError("not a tradecore anchor")
        if raw.get("version") != ANCHOR_VERSION:
            raise ValueError(f"anchor version {raw.get('version')!r} is not {ANCHOR_VERSION}")
        anchor = Anchor(
            notification_id=int(raw["notification_id"]), chain_head=str(raw["chain_head"]), created_at=str(raw["created_at"]),
            store=str(raw["store"]), key_id=str(raw["key_id"]), signature=str(raw["signature"]),
        )
        bytes.fromhex(anchor.chain_head)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorProblem(f"anchor {where} cannot be read: {exc}") from None
    if anchor.key_id != key_id(key):
        raise AnchorProblem(f"anchor {where} was signed with another key (key id {anchor.key_id}, ours {key_id(key)})")
    expected = hmac.new(key, anchor._signed_part(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, anchor.signature):
        raise AnchorProblem(f"anchor {where} has a bad signature: it was edited or forged")
    return anchor


def check_anchor(anchor: Anchor, where: str, last_id: int, link_at: Callable[[int], bytes | None]) -> str | None:
    """What is wrong with the log against this anchor, or None when the log extends it.

    ``last_id`` is the log's last notification id; ``link_at(n)`` the stored chain link of
    notification n (None when there is none). Call it on a log whose chain verified.
    """
    name = anchor.describe(where)
    if anchor.notification_id > last_id:
        return (
            f"the log no longer reaches {name}: it ends at notification {last_id}, "
            f"{anchor.notification_id - last_id} event(s) short (the tail was cut or the log rolled back)"
        )
    if anchor.notification_id == 0:
        return None
    link = link_at(anchor.notification_id)
    if link is None:
        return f"the log has no notification {anchor.notification_id} of {name} (deleted)"
    if link.hex() != anchor.chain_head:
        return (
            f"the log contradicts {name}: its chain link there is {link.hex()[:16]}..., the anchor's "
            f"{anchor.chain_head[:16]}... (the history was rewritten: a fork)"
        )
    return None
