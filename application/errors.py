"""Errors the application raises at its edge (library errors translated)."""

from __future__ import annotations

from domain.events import DomainError


class NotFound(DomainError):
    """Something asked for by id is not in the log."""

    def __init__(self, kind: str, key: object):
        self.kind, self.key = kind, key
        super().__init__(f"{kind} {key} not found")


class ConcurrencyConflict(DomainError):
    """Another writer changed the same stream first; reload and decide again."""


class StoreUnavailable(RuntimeError):
    """The event store cannot be reached or opened; the message says which and why."""
