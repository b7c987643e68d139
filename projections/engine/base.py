"""What every read-model projection is, and the batch it is handed.

The projector (projections/engine/runner.py) copies a page of the log into DuckDB as
the temporary table ``batch_events`` and asks each projection to apply the
rows it has not seen yet, inside one DuckDB transaction that also moves that
projection's position in ``projection_tracking``. So a crash never applies an
event twice or skips one, and a rebuild is the same code from position 0.

``batch_events`` columns:

    notification_id  BIGINT     -- the log's order
    topic            VARCHAR    -- 'domain.order:OrderFilled'
    event_type       VARCHAR    -- 'OrderFilled' (the class name)
    stream_id        UUID       -- originator_id
    version          BIGINT     -- originator_version
    occurred_at      TIMESTAMPTZ
    actor            VARCHAR
    correlation_id   UUID
    causation_id     UUID
    run_id           UUID
    payload          JSON       -- the stored event JSON (Decimals as strings)

A projection reads its rows with ``WHERE notification_id > ? AND
event_type IN (...)`` (the ``after`` argument), preferably as set-based SQL
(``INSERT ... SELECT payload->>'$.close' ...``); stateful ones (positions,
P&L) may fetch their few rows and compute in Python with Decimal.
Money columns are DECIMAL(38, 18), never DOUBLE.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

T = TypeVar("T")

MONEY = "DECIMAL(38, 18)"


class Projection(Protocol):
    """One read model: the tables it owns, built only from events."""

    name: str
    """Unique, stable: the key of its row in projection_tracking."""
    tables: tuple[str, ...]
    """The tables it owns (names are the contract of DESIGN.md)."""
    event_types: tuple[str, ...]
    """Event class names it reads; the projector skips batches with none of them."""

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        """CREATE TABLE IF NOT EXISTS for each owned table."""

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        """DROP each owned table (a rebuild then calls create and applies from 0)."""

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        """Apply the rows of ``batch_events`` with notification_id > after (in a transaction the projector owns)."""


# --- one page, several projections ----------------------------------------------------------

PAGE = threading.local()
"""``PAGE.table``: the page (pyarrow table) behind ``batch_events`` while the projector applies it in this thread."""

_SHARED: dict[tuple[int, int, str], tuple[Any, threading.Lock, list]] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_PAGES: list[Any] = []  # the pages with entries, oldest first
KEEP_PAGES = 3
"""Pages whose shared results are kept: the one applied, the next (prepared while it is read ahead) and one spare."""


def shared(kind: str, after: int, compute: Callable[[], T]) -> T:
    """``compute()`` once per page, position and ``kind``, for the projections applying that page side by side.

    A result derived from ``batch_events`` alone (e.g. the parsed rows several projections read) is
    computed by the first projection that asks (or ahead, while the page is read: ``Ledger.prepare``) and
    handed to the others; kept for the last ``KEEP_PAGES`` pages.
    Outside the projector (no ``PAGE.table``) it is simply computed.
    """
    page = getattr(PAGE, "table", None)
    if page is None:
        return compute()
    key = (id(page), after, kind)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None or entry[0] is not page:
            if not any(kept is page for kept in _SHARED_PAGES):
                _SHARED_PAGES.append(page)
                while len(_SHARED_PAGES) > KEEP_PAGES:
                    old = _SHARED_PAGES.pop(0)
                    for stale in [k for k, v in _SHARED.items() if v[0] is old]:
                        del _SHARED[stale]
            entry = _SHARED[key] = (page, threading.Lock(), [])
    _, lock, box = entry
    with lock:
        if not box:
            box.append(compute())
    return box[0]


def type_counts(con: duckdb.DuckDBPyConnection, after: int) -> dict[str, int]:
    """How many events of each type ``batch_events`` holds after ``after``: counted once per page from the page's
    arrow table (no statement), or by SQL outside the projector. A projection skips the statements of types the
    page does not hold."""
    page = getattr(PAGE, "table", None)
    if page is None:
        return dict(con.execute("SELECT event_type, count(*) FROM batch_events WHERE notification_id > ? "
                                "GROUP BY event_type", [after]).fetchall())
    return shared("type-counts", after, lambda: _counts(page, after))


def _counts(page: pa.Table, after: int) -> dict[str, int]:
    types = page.column("event_type")
    ids = page.column("notification_id")
    if page.num_rows and pc.min(ids).as_py() <= after:
        types = types.filter(pc.greater(ids, after))
    counted = pc.value_counts(types.cast(pa.string()))
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
