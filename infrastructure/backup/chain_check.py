"""A restored SQLite log verified as stored: every chain link recomputed from its rows, batch by batch while it is written.

A chain is verified link by link: link(n) must equal the formula over link(n-1) as stored and row n as stored
(infrastructure/eventstore/chain.py). A range of ids needs only the stored link before it, so a log is checked
in committed batches, in order, while the next batches are written: a worker process (``python -m
infrastructure.backup.chain_check``, which imports nothing but sqlite3 and the link formula; hashing holds the
GIL, a thread would not help) reads each batch the restore commits (the store is in WAL mode: it reads committed
rows while the next are written) and checks it from the stored link before it. A smaller log is checked in this
process once it is written. Either way every row is checked exactly as ``verify_chain`` does (``link_verdict``:
version 2 links, version 1 links only before any version 2 one), and the counts of both tables are compared with
the rows walked, so an event without a link or a link without an event is found too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

from infrastructure.eventstore.links import GENESIS, link_verdict

__all__ = ["FOLLOW_FROM", "Follower", "RangeCheck", "StoredChain", "check_range", "check_stored"]

FOLLOW_FROM = 100_000
"""A restore commits its rows in batches of at least this many and a ``Follower`` checks each committed batch; a
smaller log is written in one transaction and checked by ``check_stored`` (below it a worker's start costs more)."""

_FETCH = 20_000


@dataclass(frozen=True)
class RangeCheck:
    """What one range's check found: rows walked, the last id and link, or the first bad id and why."""

    count: int
    last_id: int
    head: bytes
    bad_notification_id: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class StoredChain:
    """A verified stored log: how many events, its last id and its head link."""

    count: int
    last_id: int
    head: bytes


def check_range(path: str | Path, events: str, chain: str, after: int, upto: int | None, previous: bytes) -> RangeCheck:
    """Recompute the links of the events with ``after`` < id <= ``upto`` (None: to the end), in id order, from
    ``previous`` (the stored link of the event before them); stop at the first one that does not match."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bound = "" if upto is None else f" AND e.rowid <= {int(upto)}"
        cursor = con.execute(
            f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, l.link FROM {events} e "
            f"LEFT JOIN {chain} l ON l.notification_id = e.rowid WHERE e.rowid > ?{bound} ORDER BY e.rowid", (after,))
        seen_v2 = len(previous) == 33
        topic_fields: dict[str, bytes] = {}
        count, last_id = 0, after
        while rows := cursor.fetchmany(_FETCH):
            for nid, oid, version, topic, state, link in rows:
                if link is None:
                    return RangeCheck(count, last_id, previous, nid,
                                      f"notification {nid} has no chain link (inserted outside the store)")
                link = bytes(link)
                matched = link_verdict(previous, nid, oid, version, topic, state, link, seen_v2, topic_fields)
                if matched is False:
                    return RangeCheck(count, last_id, previous, nid,
                                      f"notification {nid} does not match its chain link (edited or reordered)")
                seen_v2 = seen_v2 or matched is True
                previous, last_id = link, nid
                count += 1
        return RangeCheck(count, last_id, previous)
    finally:
        con.close()


def _counts(con: sqlite3.Connection, events: str, chain: str) -> tuple[int, int]:
    return (con.execute(f"SELECT count(*) FROM {events}").fetchone()[0],
            con.execute(f"SELECT count(*) FROM {chain}").fetchone()[0])


def _verdict(walked: RangeCheck, events_count: int, links_count: int) -> StoredChain | RangeCheck:
    """The whole log's result: the failed range, or the walk compared with the counts of both tables."""
    if walked.problem is not None:
        return walked
    if links_count != events_count or walked.count != events_count:
        extra = links_count - walked.count
        return RangeCheck(walked.count, walked.last_id, walked.head, None,
                          f"{extra} chain link{'s' if extra != 1 else ''} without an event (deleted events)"
                          if extra > 0 else f"{events_count} events but {walked.count} walked")
    return StoredChain(walked.count, walked.last_id, walked.head)


def check_stored(path: str | Path, events: str, chain: str) -> StoredChain | RangeCheck:
    """Verify the whole stored log at ``path`` (events and chain tables) in this process: a ``StoredChain`` when
    every link follows, else the failed ``RangeCheck`` naming the first bad notification id."""
    walked = check_range(path, events, chain, 0, None, GENESIS)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _verdict(walked, *_counts(con, events, chain))
    finally:
        con.close()


class Follower:
    """A worker process checking a log batch by batch while it is written (WAL mode: it reads committed rows).

    ``committed(upto)`` after each commit: the worker checks the rows up to ``upto`` from the stored link before
    them. ``finish()`` after the last commit: it checks the rest and counts both tables. A worker that found a
    problem stops early (``committed`` then returns False); ``stop()`` kills it (a failed restore). If this
    process dies, the worker reads the end of its input without ``end`` and exits without a word."""

    def __init__(self, path: str | Path, events: str, chain: str):
        root = str(Path(__file__).resolve().parents[2])  # the worker imports this package from where this file is
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "infrastructure.backup.chain_check", str(path), events, chain],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def committed(self, upto: int) -> bool:
        """Hand the worker the rows up to ``upto`` (committed); False when it has stopped (it found a problem)."""
        if self._process.poll() is not None or self._process.stdin is None:
            return False
        try:
            self._process.stdin.write(b"%d\n" % upto)
            self._process.stdin.flush()
        except BrokenPipeError:
            return False
        return True

    def end(self) -> None:
        """Every row is committed: the worker checks the rest and counts both tables (``finish`` waits for it)."""
        stdin, self._process.stdin = self._process.stdin, None  # closed here: communicate() leaves it alone
        try:
            stdin.write(b"end\n")
            stdin.close()
        except BrokenPipeError:  # it had stopped: what it found is on its output
            pass

    def finish(self) -> StoredChain | RangeCheck:
        """The whole log's result, once every row is committed (``end`` is told if it was not)."""
        if self._process.stdin is not None:
            self.end()
        out, err = self._process.communicate()
        if self._process.returncode != 0 or not out:
            raise RuntimeError(f"the chain check worker failed: {err.decode(errors='replace')}")
        d = json.loads(out)
        walked = RangeCheck(d["count"], d["last_id"], bytes.fromhex(d["head"]), d["bad"], d["problem"])
        return walked if walked.problem is not None else _verdict(walked, d["events"], d["links"])

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()


def _follow(path: str, events: str, chain: str, lines: Iterator[bytes]) -> dict | None:
    """The worker: check each announced range in turn; at ``end`` the rest and the counts (None: no ``end`` came)."""
    previous, after, count = GENESIS, 0, 0
    for line in lines:
        upto = None if line.strip() == b"end" else int(line)
        part = check_range(path, events, chain, after, upto, previous)
        count += part.count
        result = {"count": count, "last_id": part.last_id, "head": part.head.hex(), "bad": part.bad_notification_id,
                  "problem": part.problem}
        if part.problem is not None:
            return result
        after, previous = part.last_id, part.head
        if upto is None:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                result["events"], result["links"] = _counts(con, events, chain)
            finally:
                con.close()
            return result
    return None


if __name__ == "__main__":  # the worker: path events chain; reads committed ids, then "end" -> one JSON line
    _found = _follow(*sys.argv[1:4], iter(sys.stdin.buffer.readline, b""))
    if _found is not None:
        print(json.dumps(_found))
