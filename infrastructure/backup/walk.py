"""Recomputing the hash chain over archived rows (backups, exports), batch by batch; a restore's checks of the rows it writes."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from infrastructure.backup.archive import ArchiveProblem
from infrastructure.eventstore.chain import GENESIS, link_matches

V2 = b"\x02"  # the version byte of a version 2 chain link


def row_problem(where: str, last: int, nid, oid, version, topic, state, link) -> str | None:
    """What is wrong with an archived row before its link is checked (None: nothing): its id not after ``last``, no
    link, an empty field. One wording for ChainWalk and RowOrder."""
    if nid is None or nid <= last:
        return f"{where}: notification {nid} comes after {last}: events are out of order or repeated (reordered)"
    if link is None:
        return f"{where}: notification {nid} has no chain link"
    if oid is None or version is None or topic is None or state is None:
        return f"{where}: notification {nid} has an empty field"
    return None


class ChainWalk:
    """Recomputes the chain over record batches, in order; raises ArchiveProblem at the first bad row.

    Version 2 links are eventstore.chain.chain_link inlined for the archive's column
    types (text, integer, text, blob; a unit test keeps them equal); version 1 links
    of older logs go through eventstore.chain.link_matches.
    """

    def __init__(self, start: bytes = GENESIS, after_id: int = 0, where: str = "archive"):
        self.head = start
        self.last_id = after_id
        self.first_id: int | None = None
        self.count = 0
        self.where = where
        self.seen_v2 = len(start) == 33

    def feed(self, batch: pa.RecordBatch) -> list[list]:
        """Check the batch's rows; returns its columns as Python lists (for a caller that needs them too)."""
        columns = [batch.column(i).to_pylist() for i in range(6)]
        ids, oids, versions, topics, states, links = columns
        previous, last = self.head, self.last_id
        sha256 = hashlib.sha256
        for nid, oid, version, topic, state, link in zip(ids, oids, versions, topics, states, links):
            if nid is None or nid <= last or link is None or oid is None or version is None or topic is None or state is None:
                raise ArchiveProblem(row_problem(self.where, last, nid, oid, version, topic, state, link))
            if len(link) == 33:
                oid_bytes, version_bytes, topic_bytes = oid.encode(), b"%d" % version, topic.encode()
                matched = link == V2 + sha256(
                    b"%s%s%s%s%s%s%s%s%s%s%s%s%s"
                    % (
                        previous, nid.to_bytes(8, "big"),
                        b"t", len(oid_bytes).to_bytes(8, "big"), oid_bytes,
                        b"i", len(version_bytes).to_bytes(8, "big"), version_bytes,
                        b"t", len(topic_bytes).to_bytes(8, "big"), topic_bytes,
                        b"b" + len(state).to_bytes(8, "big"), state,
                    )
                ).digest()
                self.seen_v2 = True
            else:
                matched = link_matches(previous, nid, (oid, version, topic, state), link) is None and not self.seen_v2
            if not matched:
                raise ArchiveProblem(
                    f"{self.where}: notification {nid} does not match its chain link (edited, reordered, or an event before it is missing)"
                )
            previous, last = link, nid
        if self.first_id is None and ids:
            self.first_id = ids[0]
        self.head, self.last_id = previous, last
        self.count += len(ids)
        return columns


class RowOrder:
    """What a restore checks of the archive's rows before it writes them: ids ascending and unique, no empty field,
    a link on every row (ChainWalk's messages). The links themselves are then recomputed once, from the rows as
    the new store holds them (infrastructure/backup/chain_check.py), which checks the archive's links as well:
    the store's links are the archive's."""

    def __init__(self, after_id: int = 0, where: str = "archive"):
        self.last_id = after_id
        self.first_id: int | None = None
        self.count = 0
        self.where = where
        self.head = GENESIS  # the verified head, set by the loader once the store is checked

    def feed(self, batch: pa.RecordBatch) -> list[list]:
        """Check the batch's rows; returns its columns as Python lists."""
        ids = batch.column(0)
        if batch.num_rows:
            numbers = ids.to_numpy(zero_copy_only=False) if ids.null_count == 0 else None
            if (numbers is None or any(batch.column(i).null_count for i in range(1, 6)) or numbers[0] <= self.last_id
                    or (len(numbers) > 1 and not (np.diff(numbers) > 0).all())):
                self._first_problem(batch)
        columns = [batch.column(i).to_pylist() for i in range(6)]
        if self.first_id is None and batch.num_rows:
            self.first_id = columns[0][0]
        if batch.num_rows:
            self.last_id = columns[0][-1]
        self.count += batch.num_rows
        return columns

    def _first_problem(self, batch: pa.RecordBatch) -> None:
        last = self.last_id
        for nid, oid, version, topic, state, link in zip(*(batch.column(i).to_pylist() for i in range(6))):
            problem = row_problem(self.where, last, nid, oid, version, topic, state, link)
            if problem is not None:
                raise ArchiveProblem(problem)
            last = nid
