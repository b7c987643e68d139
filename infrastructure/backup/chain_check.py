"""A restored SQLite log verified as stored: every chain link recomputed from its rows, in id ranges side by side.

A chain is verified link by link: link(n) must equal the formula over link(n-1) as stored and row n as stored
(infrastructure/eventstore/chain.py). Each check needs only the stored link before it, so the log splits into
ranges of ids checked at once, one in this process and one in a worker process (``python -m
infrastructure.backup.chain_check``, which imports nothing but sqlite3 and the link formula): hashing holds the
GIL, threads would not help. Together the ranges check every row exactly as ``verify_chain`` does (version 2
links through ``next_links``' inlined formula, version 1 links through ``link_matches``, a version 1 link after
a version 2 one refused), and the counts of both tables are compared with the rows walked, so an event without
a link or a link without an event is found too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infrastructure.eventstore.links import GENESIS, link_verdict

__all__ = ["PARALLEL_FROM", "RangeCheck", "StoredChain", "check_range", "check_stored"]

PARALLEL_FROM = 200_000
"""Logs of at least this many events are checked in two ranges at once (below it a worker's start costs more)."""

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


def _worker(path: Path, events: str, chain: str, after: int, previous: bytes) -> subprocess.Popen:
    root = str(Path(__file__).resolve().parents[2])  # the worker imports this package from where this file is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen(
        [sys.executable, "-m", "infrastructure.backup.chain_check", str(path), events, chain, str(after), previous.hex()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def check_stored(path: str | Path, events: str, chain: str, parallel_from: int | None = None) -> StoredChain | RangeCheck:
    """Verify the whole stored log at ``path`` (events and chain tables): a ``StoredChain`` when every link
    follows, else the failed ``RangeCheck`` naming the first bad notification id.

    A log of at least ``parallel_from`` (default ``PARALLEL_FROM``) events is split in two ranges at its middle id; the second range is
    checked by a worker process from the stored link at the middle while this process checks the first (so the
    second range's start link is verified by the first range's last step). The worker is always waited for or
    killed before this returns."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        events_count = con.execute(f"SELECT count(*) FROM {events}").fetchone()[0]
        links_count = con.execute(f"SELECT count(*) FROM {chain}").fetchone()[0]
        middle = None
        if events_count >= (PARALLEL_FROM if parallel_from is None else parallel_from):
            middle = con.execute(f"SELECT rowid FROM {events} ORDER BY rowid LIMIT 1 OFFSET ?",
                                 (max(events_count // 2 - 1, 0),)).fetchone()[0]
            stored = con.execute(f"SELECT link FROM {chain} WHERE notification_id = ?", (middle,)).fetchone()
            if stored is None:  # the first range stops there: it has no link
                middle = None
            else:
                start = bytes(stored[0])
    finally:
        con.close()
    if middle is None:
        whole = check_range(path, events, chain, 0, None, GENESIS)
        checks = [whole]
    else:
        worker = _worker(Path(path), events, chain, middle, start)
        try:
            first = check_range(path, events, chain, 0, middle, GENESIS)
            out, err = worker.communicate()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        if worker.returncode != 0:
            raise RuntimeError(f"the chain check of notifications after {middle} failed: {err.decode(errors='replace')}")
        second = _decode(out)
        checks = [first] if first.problem is not None else [first, second]
    for check in checks:
        if check.problem is not None:
            return check
    count, last = sum(c.count for c in checks), checks[-1]
    if links_count != events_count or count != events_count:
        extra = links_count - count
        return RangeCheck(count, last.last_id, last.head, None,
                          f"{extra} chain link{'s' if extra != 1 else ''} without an event (deleted events)"
                          if extra > 0 else f"{events_count} events but {count} walked")
    return StoredChain(count, last.last_id, last.head)


def _encode(check: RangeCheck) -> str:
    return json.dumps({"count": check.count, "last_id": check.last_id, "head": check.head.hex(),
                       "bad": check.bad_notification_id, "problem": check.problem})


def _decode(text: bytes) -> RangeCheck:
    d = json.loads(text)
    return RangeCheck(d["count"], d["last_id"], bytes.fromhex(d["head"]), d["bad"], d["problem"])


if __name__ == "__main__":  # the worker: path events chain after previous-link-hex -> one JSON line
    _path, _events, _chain, _after, _previous = sys.argv[1:6]
    print(_encode(check_range(_path, _events, _chain, int(_after), None, bytes.fromhex(_previous))))
