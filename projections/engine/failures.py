"""A page applied to projections in one transaction with the move of their positions, or a failure naming them
and the page: nothing of that page is kept for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from projections.engine.base import Projection
from projections.engine.tracking import move

__all__ = ["ProjectionFailed", "failed", "in_one_transaction"]


class ProjectionFailed(RuntimeError):
    """A projection raised while applying a page; nothing of that page was kept for it (its position stays at
    ``position``)."""

    def __init__(self, message: str, position: int = 0):
        super().__init__(message)
        self.position = position


def failed(members: Sequence[Projection], position: int, last: int, first: int, exc: Exception) -> ProjectionFailed:
    names = ", ".join(repr(m.name) for m in members)
    return ProjectionFailed(
        f"projection{'s' if len(members) > 1 else ''} {names} failed on notifications "
        f"{max(first, position + 1)}..{last}; nothing of them was applied and "
        f"{'their positions stay' if len(members) > 1 else 'its position stays'} at {position}: {exc}", position)


def in_one_transaction(con: duckdb.DuckDBPyConnection, members: Sequence[Projection], position: int, first: int,
                       last: int, apply: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """``apply(con)`` and the move of the members' positions to ``last``, in one transaction; when it raises,
    nothing of it is kept and ``ProjectionFailed`` names the members and the notifications after ``position``."""
    con.begin()
    try:
        apply(con)
        move(con, [m.name for m in members], last)
        con.commit()
    except BaseException as exc:
        con.rollback()
        if isinstance(exc, Exception):
            raise failed(members, position, last, first, exc) from exc
        raise
