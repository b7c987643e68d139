"""The projector: pages the log into DuckDB and applies every projection exactly once.

Each page of the log (``batch_size`` raw rows after the lowest position) becomes
a pyarrow table that the view ``batch_events`` of projections/engine/base.py exposes,
the envelope parsed lazily by DuckDB's JSON functions: no event is decoded in
Python. For each projection behind the page's last id: BEGIN; apply(after=its
position); move its ``projection_tracking`` row; COMMIT. Rows and position move
together, so a crash (even SIGKILL) never applies an event twice or skips one.
The next page is read while one is applied (and prepared: what a projection
derives from the page alone, e.g. the money ledger's parsed rows, is computed
then), and projections apply side by side on cursors of their own. Projections
of one walk group at one position (the three money ledgers, always so in a
rebuild) apply a page as one walk; that job starts first, being the longest of a
page, and its rows and the three positions are committed in one transaction by a
writer thread while the next page is walked (group_writes.py).
``rebuild`` resets positions to 0 and catches up;
``checksums`` hashes every table in a total order, so catch-up == rebuild.

The parts: pages.py (reading pages, the read-ahead and apply threads), group_writes.py (the walk
group's writer), failures.py (a page in one transaction), tracking.py (the file and the positions),
checksums.py; this module applies pages and re-exports what callers use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from projections.engine import checksums as checksums_
from projections.engine.base import Projection
from projections.engine.failures import ProjectionFailed, in_one_transaction
from projections.engine.group_writes import settle, walk_group
from projections.engine.pages import Page, Pipeline, collector_paused
from projections.engine.tracking import TRACKING, ReadModelLocked, ensure, move, open_readmodel, positions, restart
from projections.ledger import pnl, risk_usage
from projections.ledger import positions as positions_
from projections.tables import alerts, control, decisions, market, orders

__all__ = [
    "ALL_PROJECTIONS", "TRACKING", "CatchUpReport", "ProjectionFailed", "ProjectionProgress", "ReadModelLocked",
    "UnknownProjection", "by_name", "catch_up", "checksums", "ensure", "follow", "open_readmodel", "positions",
    "rebuild", "table_digests",
]

ALL_PROJECTIONS: tuple[Projection, ...] = tuple(
    p for module in (market, decisions, orders, control, positions_, pnl, risk_usage, alerts)
    for p in module.PROJECTIONS
)
"""Every projection, in the order a page is applied."""

SMALL_PAGE = 500
"""Pages of at most this many events apply in one transaction on one cursor (``_apply_small``): at that size a
page's cost is its statements and commits, and projections side by side would only add commits."""


class UnknownProjection(KeyError):
    """A projection name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ProjectionProgress:
    """What one catch-up did for one projection."""

    applied: int = 0
    position: int = 0
    seconds: float = 0.0


@dataclass
class CatchUpReport:
    """Per-projection progress of a catch-up (or rebuild), filled as pages are applied."""

    projections: dict[str, ProjectionProgress] = field(default_factory=dict)
    events_read: int = 0
    pages: int = 0


def by_name(names: Iterable[str] | None, projections: Sequence[Projection] = ALL_PROJECTIONS) -> list[Projection]:
    """The projections named (all when None); an unknown name raises UnknownProjection."""
    if names is None:
        return list(projections)
    known = {p.name: p for p in projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownProjection(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[n] for n in names]


# --- catching up --------------------------------------------------------------------


def catch_up(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS,
    batch_size: int = 5000, *, report: CatchUpReport | None = None, on_page: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Apply every event after each projection's position; returns how many log events were read.

    ``store`` is the TradingApplication (its recorder's ``select_log_rows`` is
    the lean read). ``on_page(position)`` is called after each page is
    committed; ``stop`` ends the loop between pages.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    return _catch_up(store, con, projections, ensure(con, projections), batch_size, report, on_page, stop)


def _catch_up(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection], at: dict[str, int], batch_size: int,
    report: CatchUpReport | None, on_page: Callable[[int], None] | None, stop: threading.Event | None,
    kept: Pipeline | None = None,
) -> int:
    """``kept``: a pipeline the caller keeps between calls (``follow``: its cursors outlive a wake), else one of
    this call's own."""
    report = report if report is not None else CatchUpReport()
    for name, position in at.items():
        report.projections.setdefault(name, ProjectionProgress()).position = position
    read = 0
    pipeline = kept or Pipeline(store, con, batch_size, projections)
    # The collector stays paused for the whole catch-up, not page by page: each page's end re-enabled it and the
    # next allocation started a collection over every object the pages read ahead keep alive (~0.8 s of a
    # rebuild of a million events). What a page leaves behind is acyclic, freed by reference counting.
    try:
        with collector_paused():
            while projections and (stop is None or not stop.is_set()):
                page = pipeline.read(min(at.values()), at)
                if page is None:
                    break
                _apply(con, pipeline, projections, at, page, report)
                read += page.table.num_rows
                report.events_read += page.table.num_rows
                report.pages += 1
                if on_page is not None:  # (called once the page is committed, the money ledgers' write included)
                    settle(pipeline.writer, at, report)
                    on_page(page.last)
            settle(pipeline.writer, at, report)
    finally:
        try:  # (already settled, unless the loop raised: that error is the one raised, the positions made right)
            settle(pipeline.writer, at, report)
        except Exception:  # noqa: BLE001
            pass
        finally:
            if kept is None:
                pipeline.close()
    return read


def _apply(
    con: duckdb.DuckDBPyConnection, pipeline: Pipeline, projections: Sequence[Projection], at: dict[str, int],
    page: Page, report: CatchUpReport,
) -> None:
    due: list[tuple[Projection, int, int]] = []
    idle: list[str] = []
    for projection in projections:
        position = at[projection.name]
        if position < page.last:
            counts = page.counts_after(position)
            relevant = sum(counts[t] for t in projection.event_types)
            if relevant:
                due.append((projection, position, relevant))
            else:
                idle.append(projection.name)
    pending = set(pipeline.writer.names)
    if pending:  # the walk group's page being written: settled before its projections' positions move otherwise
        group = {p.name for p, _, _ in due if p.name in pending}
        if pending & set(idle) or group != pending or page.table.num_rows <= SMALL_PAGE:
            settle(pipeline.writer, at, report)
    if due and page.table.num_rows <= SMALL_PAGE and _apply_small(pipeline, due, idle, page, report):
        for name in idle:
            at[name] = page.last
        for projection, _, _ in due:
            at[projection.name] = page.last
        for name in at:
            report.projections[name].position = at[name]
        return
    if idle:  # nothing to apply: only their positions move, in one statement
        con.begin()
        move(con, idle, page.last)
        con.commit()
        for name in idle:
            at[name] = page.last
    seconds: dict[str, float] = {}
    # Projections of one walk group at one position (the money ledgers) apply the page as one walk.
    groups: dict[tuple[str, int], list[tuple[Projection, int, int]]] = {}
    for item in due:
        group = getattr(item[0], "walk_group", None)
        groups.setdefault((group, item[1]) if group else (f"-{item[0].name}", item[1]), []).append(item)

    def job(members: list[Projection], position: int) -> Callable[[duckdb.DuckDBPyConnection], None]:
        def run(cursor: duckdb.DuckDBPyConnection) -> None:
            began = time.perf_counter()
            if len(members) > 1:
                walk_group(pipeline.writer, cursor, members, position, page.first, page.last, report)
            else:
                _apply_page(cursor, members[0], position, page.last, page.first)
            for member in members:
                seconds[member.name] = time.perf_counter() - began
        return run

    # A walk group's job is the longest of a page: it starts first (each page waits for its slowest job).
    batches = sorted(groups.values(), key=lambda b: getattr(b[0][0], "walk_group", None) is None)
    failures = pipeline.run(page.table, [job([p for p, _, _ in b], b[0][1]) for b in batches])
    for batch, failure in zip(batches, failures):
        if failure is None:
            for projection, _, relevant in batch:
                at[projection.name] = page.last
                progress = report.projections[projection.name]
                progress.applied += relevant
                progress.seconds += seconds[projection.name]
    for name in at:
        report.projections[name].position = at[name]
    for failure in failures:  # the others' pages are committed; the first failure is raised
        if failure is not None:
            raise failure


def _apply_small(
    pipeline: Pipeline, due: list[tuple[Projection, int, int]], idle: list[str], page: Page, report: CatchUpReport,
) -> bool:
    """A small page (a follower's usual one) applied to every projection in ONE transaction on one cursor, with
    one move of all their positions: a page's fixed cost is its statements and commits, not its events. Whether
    it was applied; when a projection fails, nothing of the page is kept and the caller applies it again
    projection by projection (each in its own transaction), which keeps the others' work and names the failure."""
    seconds: dict[str, float] = {}
    groups: dict[tuple[str, int], list[tuple[Projection, int, int]]] = {}
    for item in due:
        group = getattr(item[0], "walk_group", None)
        groups.setdefault((group, item[1]) if group else (f"-{item[0].name}", item[1]), []).append(item)

    def run(cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.begin()
        try:
            for batch in groups.values():
                members, position = [p for p, _, _ in batch], batch[0][1]
                began = time.perf_counter()
                if len(members) == 1:
                    members[0].apply(cursor, position)
                else:
                    positions_.apply_together(cursor, position, members)
                for member in members:
                    seconds[member.name] = time.perf_counter() - began
            move(cursor, [*idle, *(p.name for p, _, _ in due)], page.last)
            cursor.commit()
        except BaseException:
            cursor.rollback()
            raise

    failure = pipeline.run(page.table, [run])[0]
    if isinstance(failure, Exception):
        return False
    if failure is not None:
        raise failure
    for projection, _, relevant in due:
        progress = report.projections[projection.name]
        progress.applied += relevant
        progress.seconds += seconds[projection.name]
    return True


def _apply_page(con: duckdb.DuckDBPyConnection, projection: Projection, position: int, last: int, first: int) -> None:
    """Apply the page to one projection and move its position, in one transaction (a walk group of several:
    group_writes.walk_group)."""
    in_one_transaction(con, [projection], position, first, last, lambda c: projection.apply(c, position))


def rebuild(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS,
    batch_size: int = 5000, *, names: Iterable[str] | None = None, report: CatchUpReport | None = None,
    on_page: Callable[[int], None] | None = None, stop: threading.Event | None = None,
) -> int:
    """Drop and recreate the named projections (all when None), then catch up from 0 (``stop`` ends it between
    pages, as catch_up's does: what was applied is kept, a later catch-up goes on from there).

    Projections not named keep their tables and positions.
    """
    chosen = by_name(names, projections)
    positions(con)
    for projection in chosen:
        restart(con, projection)
    return catch_up(store, con, chosen, batch_size, report=report, on_page=on_page, stop=stop)


def follow(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS,
    batch_size: int = 5000, *, poll_ms: int = 100, stop: threading.Event,
    on_page: Callable[[int], None] | None = None, on_idle: Callable[[], None] | None = None,
    wait: Callable[[float], None] | None = None,
) -> int:
    """Keep catching up until ``stop`` is set; when there is nothing new, call ``on_idle`` and wait ``poll_ms``
    (through ``wait(seconds)`` when given: a LISTEN/NOTIFY waker returns as soon as the log grows).

    For ``tradecore project --follow``, ``serve`` and ``run``: run it in the
    process (or a thread of the process) that owns the DuckDB file; other
    threads read through ``con.cursor()``. Returns the events read in total.
    """
    total = 0
    at = ensure(con, projections)
    pipeline = Pipeline(store, con, batch_size, projections)  # kept: its cursors are set up once, not per wake
    try:
        while not stop.is_set():
            read = _catch_up(store, con, projections, at, batch_size, None, on_page, stop, pipeline)
            total += read
            if read == 0:
                if on_idle is not None:
                    on_idle()
                (wait or stop.wait)(poll_ms / 1000)
    finally:
        pipeline.close()
    return total


def table_digests(
    con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS
) -> dict[str, tuple[str, int]]:
    """(sha256 hex, row count) of each existing projected table (see projections/engine/checksums.py)."""
    return checksums_.table_digests(con, projections)


def checksums(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS) -> dict[str, str]:
    """sha256 hex of each projected table's rows (see ``table_digests``)."""
    return checksums_.checksums(con, projections)
