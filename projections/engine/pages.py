"""Pages of the log as arrow tables, read ahead and applied side by side.

Each page of the log (``batch_size`` raw rows after the lowest position) becomes a pyarrow table that
the view ``batch_events`` of projections/engine/base.py exposes, the envelope parsed lazily by DuckDB's
JSON functions: no event is decoded in Python. The next page is read while one is applied, and prepared
as soon as it is read, in a thread of its own (what a projection derives from the page alone, e.g. the
money ledger's parsed rows and the page's parsed candles), so the page after it is read meanwhile; projections
apply side by side on cursors of their own.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from projections.engine.base import PAGE, Projection
from projections.engine.group_writes import GroupWriter

__all__ = ["APPLY_THREADS", "BATCH_VIEW", "Page", "Pipeline", "collector_paused", "read_page"]

# DuckDB evaluates only the columns a query reads, after its WHERE on
# notification_id / event_type. Bulk projections take their envelope fields in
# their own json_transform instead: one parse per event.
BATCH_VIEW = """CREATE OR REPLACE TEMP VIEW batch_events AS
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

APPLY_THREADS = 3
"""Projections applied at once (on two cores, three beat two by a little and one by a third)."""


@dataclass
class Page:
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


_PAUSES = 0  # how many threads are inside collector_paused now
_PAUSES_LOCK = threading.Lock()
_RESUME = False  # whether the collector was enabled when the first of them came in


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a page is read, prepared or applied (process-wide, like
    application.trading_app.paused_gc): a page allocates tens of thousands of acyclic objects (row tuples, the
    ledger's events and rows), and each 700 allocations would otherwise start a collection that walks every live
    object again (reading a page of 20,000: 89 -> 30 ms CPU). Reference counting still frees them.

    The pauses of the projector's threads are counted: the collector resumes when the last one leaves (if it
    was enabled when the first came in). Before, the read-ahead thread leaving its pause re-enabled it while
    the main thread was still applying a page: full collections over the kept pages cost ~1-3 s of CPU in a
    rebuild of a million events."""
    global _PAUSES, _RESUME
    with _PAUSES_LOCK:
        if _PAUSES == 0:
            _RESUME = gc.isenabled()
            gc.disable()
        _PAUSES += 1
    try:
        yield
    finally:
        with _PAUSES_LOCK:
            _PAUSES -= 1
            if _PAUSES == 0 and _RESUME:
                gc.enable()


def read_page(recorder: Any, after: int, batch_size: int) -> Page | None:
    with collector_paused():
        return _read_page(recorder, after, batch_size)


def _read_page(recorder: Any, after: int, batch_size: int) -> Page | None:
    """The page of ``batch_size`` log rows after ``after``: as arrow columns straight from the store when its
    recorder reads so (``select_log_columns``: SQLite), else from ``select_log_rows``' tuples."""
    columns = getattr(recorder, "select_log_columns", None)
    read = columns(after, batch_size) if columns is not None else None
    if read is not None:
        ids, topics, payload = read
        if not len(ids):
            return None
    else:
        rows = recorder.select_log_rows(after, batch_size)
        if not rows:
            return None
        ids_, topics_, states = zip(*rows)
        ids, topics = pa.array(ids_, pa.int64()), pa.array(topics_, pa.string())
        payload = pa.array(states, pa.binary()).cast(pa.string())
    if topics.null_count:
        missing = ids.filter(topics.is_null())[0].as_py()
        raise ValueError(f"notification {missing} of the log has no topic: the log was altered outside tradecore "
                         "(tradecore audit verify names what changed)")
    topic_codes = topics.dictionary_encode()
    names = pa.array([t.rpartition(":")[2] for t in topic_codes.dictionary.to_pylist()], pa.string())
    table = pa.Table.from_arrays(
        [ids, topic_codes, pa.DictionaryArray.from_arrays(topic_codes.indices, names),
         pa.ExtensionArray.from_storage(pa.json_(), payload)],
        names=["notification_id", "topic", "event_type", "payload"],
    )
    counts: Counter = Counter()
    for name, n in zip(names.to_pylist(), np.bincount(topic_codes.indices.to_numpy(), minlength=len(names))):
        counts[name] += int(n)
    return Page(table, ids[0].as_py(), ids[-1].as_py(), counts)


class Pipeline:
    """Reads the next page while one is applied; applies projections side by side.

    Each apply thread has its own cursor that sees the page as the arrow table
    ``batch_rows`` (scanned in place) under its own ``batch_events`` view; the
    concurrent transactions write different tables and tracking rows.
    """

    def __init__(self, store: Any, con: duckdb.DuckDBPyConnection, batch_size: int,
                 projections: Sequence[Projection] = ()):
        self._recorder, self._con, self._batch_size = store.recorder, con, batch_size
        # What a page read ahead is prepared for (work derived from the page alone, see Ledger.prepare):
        # one projection per walk group suffices, the group's members share it.
        groups: dict[Any, Any] = {}
        for projection in projections:
            if callable(getattr(projection, "prepare", None)):
                groups.setdefault(getattr(projection, "walk_group", None) or projection.name, projection)
        self._prepare = list(groups.values())
        self._reader: ThreadPoolExecutor | None = None
        self._preparer: ThreadPoolExecutor | None = None
        self._appliers: ThreadPoolExecutor | None = None
        self.writer = GroupWriter(lambda: self._cursor(None))
        self._ahead: tuple[int, Future] | None = None
        self._local, self._cursors = threading.local(), []

    def read(self, after: int, positions: dict[str, int] | None = None) -> Page | None:
        """The page after ``after``; the next one is read meanwhile and, once read, prepared in a thread of its own
        for the projections of ``positions`` that will be at its start once this page is applied (i.e. not ahead
        of it): its preparing goes on while this page is applied and the page after it is read."""
        page = None
        if self._ahead is not None:
            (at, future), self._ahead = self._ahead, None
            page = future.result() if at == after else None
        page = page or read_page(self._recorder, after, self._batch_size)
        if page is not None and page.table.num_rows == self._batch_size:
            self._reader = self._reader or ThreadPoolExecutor(1, thread_name_prefix="projector-read")
            due = [p for p in self._prepare if positions is None or positions.get(p.name, 0) <= page.last]
            self._ahead = (page.last, self._reader.submit(self._read_ahead, page.last, due))
        return page

    def _read_ahead(self, after: int, prepare: Sequence[Projection]) -> Page | None:
        """Read the page after ``after`` and have it prepared (in the preparing thread) for ``prepare``, which
        will apply it from ``after``: the next page can then be read while this one is prepared."""
        with collector_paused():
            page = _read_page(self._recorder, after, self._batch_size)
        if page is not None and prepare:
            self._preparer = self._preparer or ThreadPoolExecutor(1, thread_name_prefix="projector-prepare")
            try:
                self._preparer.submit(self._prepare_page, page, after, prepare)
            except RuntimeError:  # the pipeline is closing: the page is not applied
                pass
        return page

    def _prepare_page(self, page: Page, after: int, prepare: Sequence[Projection]) -> None:
        """What ``prepare`` derive from the page alone, computed ahead (kept by ``shared`` for their apply)."""
        with collector_paused():
            try:
                cursor = self._cursor(page.table)
                PAGE.table = page.table
                for projection in prepare:
                    projection.prepare(cursor, after)
            except Exception:  # noqa: BLE001 - applying the page computes it again and reports a failure
                pass
            finally:
                PAGE.table = None

    def _cursor(self, page: pa.Table | None) -> duckdb.DuckDBPyConnection:
        local = self._local
        if getattr(local, "cursor", None) is None:
            local.cursor, local.page = self._con.cursor(), None
            local.cursor.execute("SET TimeZone = 'UTC'")
            self._cursors.append(local.cursor)
        if page is not None and local.page is not page:
            local.cursor.register("batch_rows", page)
            if local.page is None:
                local.cursor.execute(BATCH_VIEW)
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
        self.writer.close()
        for pool in (self._reader, self._preparer, self._appliers):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        for cursor in self._cursors:
            cursor.close()
