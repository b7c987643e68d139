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
rebuild) apply a page as one walk in one transaction that moves their three
positions; that job starts first, being the longest of a page.
``rebuild`` resets positions to 0 and catches up;
``checksums`` hashes every table in a total order, so catch-up == rebuild.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from projections.ledger import pnl, risk_usage
from projections.tables import alerts, control, decisions, market, orders
from projections.ledger import positions as positions_
from projections.engine.base import PAGE, Projection

TRACKING = "projection_tracking"
_TRACKING_DDL = f"""CREATE TABLE IF NOT EXISTS {TRACKING} (
    name VARCHAR PRIMARY KEY,
    last_notification_id BIGINT NOT NULL,
    updated_at TIMESTAMPTZ      -- wall clock of the last move; never checksummed
)"""

# DuckDB evaluates only the columns a query reads, after its WHERE on
# notification_id / event_type. Bulk projections take their envelope fields in
# their own json_transform instead: one parse per event.
_BATCH_VIEW = """CREATE OR REPLACE TEMP VIEW batch_events AS
SELECT notification_id, topic, event_type,
       CAST(json_extract_string(payload, '$.originator_id') AS UUID) AS stream_id,
       CAST(json_extract(payload, '$.originator_version') AS BIGINT) AS version,
       CAST(json_extract_string(payload, '$.occurred_at') AS TIMESTAMPTZ) AS occurred_at,
       json_extract_string(payload, '$.actor') AS actor,
       CAST(json_extract_string(payload, '$.correlation_id') AS UUID) AS correlation_id,
       CAST(json_extract_string(payload, '$.causation_id') AS UUID) AS causation_id,
       CAST(json_extract_string(payload, '$.run_id') AS UUID) AS run_id,
       payload
FROM batch_rows"""

ALL_PROJECTIONS: tuple[Projection, ...] = tuple(
    p for module in (market, decisions, orders, control, positions_, pnl, risk_usage, alerts)
    for p in module.PROJECTIONS
)
"""Every projection, in the order a page is applied."""

APPLY_THREADS = 3
"""Projections applied at once (on two cores, three beat two by a little and one by a third)."""


class ReadModelLocked(RuntimeError):
    """The DuckDB file is open in another process (DuckDB allows one writer per file)."""


class ProjectionFailed(RuntimeError):
    """A projection raised while applying a page; nothing of that page was kept for it."""


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


# --- the file and the positions ---------------------------------------------------


def open_readmodel(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating it and its folder) the read-model file, in UTC.

    A file held by another process raises ReadModelLocked naming the file and that process.
    """
    target = Path(path)
    if str(path) != ":memory:" and not read_only:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        pid = re.search(r"PID (\d+)", str(exc))
        raise ReadModelLocked(
            f"the read model {target} is in use by another tradecore process{f' (PID {pid.group(1)})' if pid else ''}: "
            "DuckDB lets one process own the file; stop that process (or read through its API) and try again"
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:  # fewer, larger checkpoints: each rewrites the tables' last, partly filled row groups
        con.execute("SET checkpoint_threshold = '256MB'")
    return con


def by_name(names: Iterable[str] | None, projections: Sequence[Projection] = ALL_PROJECTIONS) -> list[Projection]:
    """The projections named (all when None); an unknown name raises UnknownProjection."""
    if names is None:
        return list(projections)
    known = {p.name: p for p in projections}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownProjection(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[n] for n in names]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def positions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Each tracked projection's last applied notification id."""
    con.execute(_TRACKING_DDL)
    return dict(con.execute(f"SELECT name, last_notification_id FROM {TRACKING}").fetchall())


def ensure(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]) -> dict[str, int]:
    """Create missing tables and tracking rows; returns the positions.

    A projection without a tracking row starts from 0 with its tables dropped
    and created again, so stale rows never survive.
    """
    tracked = positions(con)
    for projection in projections:
        if projection.name in tracked:
            projection.create(con)
        else:
            _restart(con, projection)
            tracked[projection.name] = 0
    return {p.name: tracked[p.name] for p in projections}


def _restart(con: duckdb.DuckDBPyConnection, projection: Projection) -> None:
    """Drop and create its tables and set its position to 0, in one transaction."""
    con.begin()
    try:
        projection.drop(con)
        projection.create(con)
        con.execute(f"DELETE FROM {TRACKING} WHERE name = ?", [projection.name])
        con.execute(f"INSERT INTO {TRACKING} VALUES (?, 0, ?)", [projection.name, _now()])
        con.commit()
    except BaseException:
        con.rollback()
        raise


# --- pages ------------------------------------------------------------------------


@dataclass
class _Page:
    """One page of the log as an arrow table, with its event-type counts."""

    table: pa.Table
    first: int
    last: int
    counts: Counter

    def counts_after(self, position: int) -> Counter:
        if position < self.first:
            return self.counts
        later = self.table.filter(pc.greater(self.table.column("notification_id"), position))
        return Counter(later.column("event_type").to_pylist())


def _read_page(select: Callable[..., list], after: int, batch_size: int) -> _Page | None:
    rows = select(after, batch_size)
    if not rows:
        return None
    ids, topics, states = zip(*rows)
    topic_codes = pa.array(topics, pa.string()).dictionary_encode()
    names = pa.array([t.rpartition(":")[2] for t in topic_codes.dictionary.to_pylist()], pa.string())
    payload = pa.array(states, pa.binary()).cast(pa.string())
    table = pa.Table.from_arrays(
        [pa.array(ids, pa.int64()), topic_codes, pa.DictionaryArray.from_arrays(topic_codes.indices, names),
         pa.ExtensionArray.from_storage(pa.json_(), payload)],
        names=["notification_id", "topic", "event_type", "payload"],
    )
    counts: Counter = Counter()
    for name, n in zip(names.to_pylist(), np.bincount(topic_codes.indices.to_numpy(), minlength=len(names))):
        counts[name] += int(n)
    return _Page(table, ids[0], ids[-1], counts)


class _Pipeline:
    """Reads the next page while one is applied; applies projections side by side.

    Each apply thread has its own cursor that sees the page as the arrow table
    ``batch_rows`` (scanned in place) under its own ``batch_events`` view; the
    concurrent transactions write different tables and tracking rows.
    """

    def __init__(self, store: Any, con: duckdb.DuckDBPyConnection, batch_size: int,
                 projections: Sequence[Projection] = ()):
        self._select, self._con, self._batch_size = store.recorder.select_log_rows, con, batch_size
        # What a page read ahead is prepared for (work derived from the page alone, see Ledger.prepare):
        # one projection per walk group suffices, the group's members share it.
        groups: dict[Any, Any] = {}
        for projection in projections:
            if callable(getattr(projection, "prepare", None)):
                groups.setdefault(getattr(projection, "walk_group", None) or projection.name, projection)
        self._prepare = list(groups.values())
        self._reader: ThreadPoolExecutor | None = None
        self._appliers: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future] | None = None
        self._local, self._cursors = threading.local(), []

    def read(self, after: int, positions: dict[str, int] | None = None) -> _Page | None:
        """The page after ``after``; the next one is read (and prepared for the projections of ``positions``
        that will be at its start once this page is applied, i.e. not ahead of it) meanwhile."""
        page = None
        if self._ahead is not None:
            (at, future), self._ahead = self._ahead, None
            page = future.result() if at == after else None
        page = page or _read_page(self._select, after, self._batch_size)
        if page is not None and page.table.num_rows == self._batch_size:
            self._reader = self._reader or ThreadPoolExecutor(1, thread_name_prefix="projector-read")
            due = [p for p in self._prepare if positions is None or positions.get(p.name, 0) <= page.last]
            self._ahead = (page.last, self._reader.submit(self._read_ahead, page.last, due))
        return page

    def _read_ahead(self, after: int, prepare: Sequence[Projection]) -> _Page | None:
        """Read the page after ``after`` and prepare it for ``prepare``, which will apply it from ``after``."""
        page = _read_page(self._select, after, self._batch_size)
        if page is not None and prepare:
            try:
                cursor = self._cursor(page.table)
                PAGE.table = page.table
                for projection in prepare:
                    projection.prepare(cursor, after)
            except Exception:  # noqa: BLE001 - applying the page computes it again and reports a failure
                pass
            finally:
                PAGE.table = None
        return page

    def _cursor(self, page: pa.Table) -> duckdb.DuckDBPyConnection:
        local = self._local
        if getattr(local, "cursor", None) is None:
            local.cursor, local.page = self._con.cursor(), None
            local.cursor.execute("SET TimeZone = 'UTC'")
            self._cursors.append(local.cursor)
        if local.page is not page:
            local.cursor.register("batch_rows", page)
            if local.page is None:
                local.cursor.execute(_BATCH_VIEW)
            local.page = page
        return local.cursor

    def run(self, page: pa.Table, jobs: list[Callable[[duckdb.DuckDBPyConnection], None]]) -> list[BaseException | None]:
        """Run each job with a cursor that sees the page; returns each one's exception or None."""
        def one(job: Callable[[duckdb.DuckDBPyConnection], None]) -> BaseException | None:
            PAGE.table = page  # lets projections share work derived from the page (projections.engine.base.shared)
            try:
                job(self._cursor(page))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller, in order
                return exc
            finally:
                PAGE.table = None
            return None

        if len(jobs) == 1:
            return [one(jobs[0])]
        self._appliers = self._appliers or ThreadPoolExecutor(APPLY_THREADS, thread_name_prefix="projector-apply")
        return list(self._appliers.map(one, jobs))

    def close(self) -> None:
        for pool in (self._reader, self._appliers):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        for cursor in self._cursors:
            cursor.close()


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
) -> int:
    report = report if report is not None else CatchUpReport()
    for name, position in at.items():
        report.projections.setdefault(name, ProjectionProgress()).position = position
    read = 0
    pipeline = _Pipeline(store, con, batch_size, projections)
    try:
        while projections and (stop is None or not stop.is_set()):
            page = pipeline.read(min(at.values()), at)
            if page is None:
                break
            _apply(con, pipeline, projections, at, page, report)
            read += page.table.num_rows
            report.events_read += page.table.num_rows
            report.pages += 1
            if on_page is not None:
                on_page(page.last)
    finally:
        pipeline.close()
    return read


def _apply(
    con: duckdb.DuckDBPyConnection, pipeline: _Pipeline, projections: Sequence[Projection], at: dict[str, int],
    page: _Page, report: CatchUpReport,
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
    if idle:  # nothing to apply: only their positions move, in one statement
        con.begin()
        con.execute(f"UPDATE {TRACKING} SET last_notification_id = ?, updated_at = ? WHERE name IN "
                    f"({', '.join('?' * len(idle))})", [page.last, _now(), *idle])
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
            _apply_page(cursor, members, position, page.last, page.first)
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


def _apply_page(
    con: duckdb.DuckDBPyConnection, members: list[Projection], position: int, last: int, first: int
) -> None:
    """Apply the page to one projection, or to several of one walk group in one walk (positions_.apply_together),
    and move their positions, in one transaction."""
    con.begin()
    try:
        if len(members) == 1:
            members[0].apply(con, position)
        else:
            positions_.apply_together(con, position, members)
        con.execute(f"UPDATE {TRACKING} SET last_notification_id = ?, updated_at = ? WHERE list_contains(?, name)",
                    [last, _now(), [m.name for m in members]])
        con.commit()
    except BaseException as exc:
        con.rollback()
        if isinstance(exc, Exception):
            names = ", ".join(repr(m.name) for m in members)
            raise ProjectionFailed(
                f"projection{'s' if len(members) > 1 else ''} {names} failed on notifications "
                f"{max(first, position + 1)}..{last}; nothing of them was applied and "
                f"{'their positions stay' if len(members) > 1 else 'its position stays'} at {position}: {exc}"
            ) from exc
        raise


def rebuild(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS,
    batch_size: int = 5000, *, names: Iterable[str] | None = None, report: CatchUpReport | None = None,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """Drop and recreate the named projections (all when None), then catch up from 0.

    Projections not named keep their tables and positions.
    """
    chosen = by_name(names, projections)
    positions(con)
    for projection in chosen:
        _restart(con, projection)
    return catch_up(store, con, chosen, batch_size, report=report, on_page=on_page)


def follow(
    store: Any, con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS,
    batch_size: int = 5000, *, poll_ms: int = 100, stop: threading.Event,
    on_page: Callable[[int], None] | None = None, on_idle: Callable[[], None] | None = None,
) -> int:
    """Keep catching up until ``stop`` is set; when there is nothing new, call ``on_idle`` and wait ``poll_ms``.

    For ``tradecore project --follow``, ``serve`` and ``run``: run it in the
    process (or a thread of the process) that owns the DuckDB file; other
    threads read through ``con.cursor()``. Returns the events read in total.
    """
    total = 0
    at = ensure(con, projections)
    while not stop.is_set():
        read = _catch_up(store, con, projections, at, batch_size, None, on_page, stop)
        total += read
        if read == 0:
            if on_idle is not None:
                on_idle()
            stop.wait(poll_ms / 1000)
    return total


# --- checksums ------------------------------------------------------------------------


def table_digests(
    con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS
) -> dict[str, tuple[str, int]]:
    """(sha256 hex, row count) of each existing projected table.

    Each row is rendered as text (DECIMAL, UUID and UTC times print exactly)
    and hashed with md5; the row hashes are sorted (a total order of the
    table's content, whatever its physical order) and their concatenation is
    hashed with sha256. ``projection_tracking`` is left out: it holds wall-clock times.
    """
    con.execute("SET TimeZone = 'UTC'")
    there = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main'").fetchall()}
    out: dict[str, tuple[str, int]] = {}
    for table in (t for p in projections for t in p.tables if t in there):
        out[table] = tuple(con.execute(
            "SELECT sha256(coalesce(string_agg(h, '' ORDER BY h), '')), count(*) "
            f'FROM (SELECT md5(CAST(t AS VARCHAR)) AS h FROM "{table}" AS t)'
        ).fetchall()[0])
    return out


def checksums(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection] = ALL_PROJECTIONS) -> dict[str, str]:
    """sha256 hex of each projected table's rows (see ``table_digests``)."""
    return {table: digest for table, (digest, _) in table_digests(con, projections).items()}
