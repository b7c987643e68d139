"""The money ledgers' pages written while the next page is walked (the projector's walk groups).

The walk of a page is Python holding the GIL; its writes are DuckDB statements that release it. So the
projector (runner.py) walks a walk group's page in an applying thread, hands what it writes to the
``GroupWriter``, which commits it with the group's positions in a thread of its own, and walks the next
page meanwhile from the state the walk before left (projections/ledger/carry.py ``Carry``): the books it
walked, the orders it changed, its candle closes, none of which the tables may hold yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import duckdb

from projections.engine.base import Projection
from projections.engine.failures import ProjectionFailed, failed, in_one_transaction
from projections.ledger.together import walk_together

__all__ = ["GroupWriter", "settle", "walk_group"]


class GroupWriter:
    """Writes a walk group's pages (the money ledgers') in a thread of its own, one page at a time and in order,
    while the projector walks the next page from the state the walk before it left (``carry``).

    At most one page is being written: ``submit`` first ``settle``s, which waits for the page before and
    raises its failure; so when a walk starts, every page but the one being written is committed, and the carry
    stands for that one. ``settle`` is also called before anything else touches those projections' positions
    and at the end of every catch-up."""

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection]):
        self._cursor = cursor
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self.names: tuple[str, ...] = ()
        """The projections of the page being written (until ``settle``)."""
        self.carry: tuple[tuple[tuple[str, ...], int], Any] | None = None
        """((projection names, the last notification id of the page walked), what its walk left)."""

    def carried(self, names: tuple[str, ...], position: int) -> Any:
        """What the walk of the page ending at ``position`` for ``names`` left, if that was the page walked last."""
        if self.carry is not None and self.carry[0] == (names, position):
            return self.carry[1]
        return None

    def submit(self, names: tuple[str, ...], write: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        self.settle()
        self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="projector-write")
        self.names = names
        self._pending = self._pool.submit(lambda: write(self._cursor()))

    def settle(self) -> None:
        """Wait until the page being written is committed; its failure is raised here (and nothing is carried)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.names = ()
            try:
                pending.result()
            except BaseException:
                self.carry = None
                raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def walk_group(
    writer: GroupWriter, con: duckdb.DuckDBPyConnection, members: list[Projection], position: int, first: int,
    last: int, report: Any,
) -> None:
    """Walk the page (notifications ``first``..``last``) for the members of a walk group at one position (the
    money ledgers) and hand what it writes to ``writer``, which commits it, with their positions, while the next
    page is walked.

    The walk starts from what the walk of the page before left (``Carry``), that page being written meanwhile;
    when there is none (the first page, or the group or its position changed) every write is committed first
    and the walk reads the tables alone. A failed walk applies nothing; a failed write is raised by the next
    ``settle`` (before the next page's write is queued, or at the end of the catch-up)."""
    names = tuple(m.name for m in members)
    carry = writer.carried(names, position)
    if carry is None:
        writer.settle()
    together = walk_together(members)
    try:
        together.walk(con, position, carry)
        writes = together.writes(con, position)
        left = together.carry(con, position)
    except Exception as exc:
        writer.carry = None
        writer.settle()  # (a failure of the page before, the earlier one, is raised first)
        raise failed(members, position, last, first, exc) from exc

    def write_all(cursor: duckdb.DuckDBPyConnection) -> None:
        for statement in writes:
            statement(cursor)

    def write(cursor: duckdb.DuckDBPyConnection) -> None:
        began = time.perf_counter()
        in_one_transaction(cursor, members, position, first, last, write_all)
        for name in names:
            report.projections[name].seconds += time.perf_counter() - began

    writer.submit(names, write)  # (waits for the page before to be committed, raising its failure)
    writer.carry = ((names, last), left)


def settle(writer: GroupWriter, at: dict[str, int], report: Any) -> None:
    """Wait for the walk group's page being written (``GroupWriter``); if it failed, its projections' positions
    go back to where they are committed and the failure is raised."""
    names = writer.names
    try:
        writer.settle()
    except ProjectionFailed as exc:
        for name in names:
            at[name] = report.projections[name].position = exc.position
        raise
