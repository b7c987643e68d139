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


# --- errors the adapters raise and the CLI and REST app map --------------------------------------
# Defined here, at the edge of the application, so that api/ maps them without importing an adapter.
# The adapters raise these very classes (their old import paths are aliases of these).


class StoreURLError(ValueError):
    """The event store URL cannot be used; the message says why."""


class StoreMissing(StoreURLError):
    """A read-only command was pointed at a store that does not exist; the message names the URL."""


class ConfigurationError(ValueError):
    """The configuration cannot be loaded; ``errors`` names every bad setting (path, value, why, source)."""

    def __init__(self, errors: list) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"invalid configuration ({len(self.errors)} problem(s)):\n{lines}")


class StorageError(Exception):
    """The backup destination cannot be used; the message says why."""


class ArchiveProblem(Exception):
    """An archive or export is not what its manifest says; the message names the problem."""


class RestoreRefused(Exception):
    """The target store cannot be restored into; the message says why and what to do."""


class BackupRefused(Exception):
    """The log cannot be backed up as asked; the message says why and what to do."""


class AnchorProblem(Exception):
    """An anchor cannot be read, or its signature does not match the key; the message names the anchor."""


class MissingSetting(ValueError):
    """A command needs a setting that is not configured; the message names it."""
