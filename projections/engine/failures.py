"""A projection that failed on a page: nothing of that page is kept for it."""

from __future__ import annotations

from collections.abc import Sequence

from projections.engine.base import Projection

__all__ = ["ProjectionFailed", "failed"]


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
