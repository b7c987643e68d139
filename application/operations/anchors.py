"""Anchors: signed checkpoints of the log's chain head, kept outside the store (a file, a folder, S3 under Object Lock).

``tradecore audit anchor``, the end of a run and a backup write one; ``tradecore audit verify --anchor`` holds the
log against every anchor found, so a later cut, rollback or rewrite of the log shows. Decided here: a head is
anchored only when the whole chain verifies (a broken log is never vouched for), and every anchor is checked
(signature, then reach and link) with all its problems listed. Signing, reading and storing anchors are the
adapters' work, behind the ``Notary`` port that api/bootstrap.py fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from application.errors import AnchorProblem


@dataclass(frozen=True)
class Notary:
    """The port: what anchoring needs from outside, one function each.

    ``verify_chain(store)`` walks the log's chain (a report: ``ok``, ``checked``, ``last_id``, ``head``,
    ``bad_notification_id``, ``problem``); ``sign(notification_id, chain_head, created_at, store_name, key)``
    makes an anchor; ``write(anchor, target, now, retention_days)`` stores it (``where``, ``retain_until``,
    ``lock_mode``; StorageError when it cannot); ``read_all(source)`` lists ``(where, bytes)`` of every anchor at a
    file, folder or s3:// prefix; ``read(data, where, key)`` opens one, its signature checked (AnchorProblem);
    ``check(anchor, where, last_id, link_at)`` is the problem of a log that does not extend it, or None.
    """

    verify_chain: Callable[[Any], Any]
    sign: Callable[[int, str, datetime, str, bytes], Any]
    write: Callable[[Any, str, datetime, int], Any]
    read_all: Callable[[str], list[tuple[str, bytes]]]
    read: Callable[[bytes, str, bytes], Any]
    check: Callable[[Any, str, int, Callable[[int], bytes | None]], str | None]


class LogNotIntact(Exception):
    """The log's hash chain is broken: no anchor may vouch for it. ``report`` is the chain's report."""

    def __init__(self, report: Any):
        self.report = report
        super().__init__(f"the log is NOT intact (first bad notification id {report.bad_notification_id}: "
                         f"{report.problem})")


@dataclass(frozen=True)
class Anchored:
    """An anchor written: the anchor (``notification_id``, ``chain_head``, ``created_at``, ``key_id``) and where."""

    anchor: Any
    written: Any


@dataclass(frozen=True)
class AnchorCheck:
    """The log held against the anchors at ``source``: how many, the newest one's reach, every problem found."""

    source: str
    checked: int
    newest: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def intact_head(store: Any, notary: Notary) -> Any:
    """The chain report of the store's log; raises LogNotIntact when the chain is broken."""
    report = notary.verify_chain(store)
    if not report.ok:
        raise LogNotIntact(report)
    return report


def anchor_head(notary: Notary, notification_id: int, chain_head: str, *, target: str, now: datetime,
                store_name: str, key: bytes, retention_days: int) -> Anchored:
    """Sign the head (``notification_id``, ``chain_head``) of a verified log and write it at ``target``."""
    anchor = notary.sign(notification_id, chain_head, now, store_name, key)
    return Anchored(anchor, notary.write(anchor, target, now, retention_days))


def check_anchors(notary: Notary, source: str, key: bytes, last_id: int,
                  link_at: Callable[[int], bytes | None]) -> AnchorCheck:
    """Every anchor at ``source`` checked against the log (its last id and its link at an id): signature, then
    reach and link; an unreadable anchor is one problem among the others, never the end of the check."""
    found = notary.read_all(source)
    problems, newest = [], 0
    for where, data in found:
        try:
            anchor = notary.read(data, where, key)
        except AnchorProblem as exc:
            problems.append(str(exc))
            continue
        newest = max(newest, anchor.notification_id)
        problem = notary.check(anchor, where, last_id, link_at)
        if problem:
            problems.append(problem)
    return AnchorCheck(source, len(found), newest, problems)
