"""Backups, restores, prunes and auditors' exports of the log, over the ``BackupShelf`` port.

The archives themselves (their format, local folders and S3, loading a restore into SQLite or
PostgreSQL) are infrastructure/backup's; api/bootstrap.py fills the port with it. Decided here:
a backup with ``audit.anchor_key`` set leaves a signed anchor of its head beside it; the leftovers
of killed backups and restores are listed from the destination even when the store cannot be
searched (and the listing says so); a prune removes only leftovers no running process may hold.
Errors are application/errors.py's: StorageError, ArchiveProblem, BackupRefused, RestoreRefused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from application.operations.anchors import Anchored, Notary, anchor_head


@dataclass(frozen=True)
class BackupShelf:
    """The port: the archives' adapters, one function each.

    ``open(dest)`` the archives at a folder or s3://bucket/prefix; ``locate(archive, default_dest)`` ->
    (archives, name) of a NAME, folder, s3 URL or 'latest'; ``listing(archives)`` every archive, oldest first,
    incomplete ones too; ``create(store, archives, kind=, now=, ...)``, ``verify(archives, name)``,
    ``restore(archives, name, target_url, open_store=, now=, ...)``, ``prune(archives, keep_counts, dry_run=)``;
    ``leftovers(archives, store_location, now)`` and ``folder_leftovers(root)`` what killed backups and restores
    left, ``remove_leftover(leftover, store_location)``; ``export(store, output, ...)``, ``verify_export(path)``
    and ``manifest_path(output)`` for auditors' exports. ``kinds``: the retention kinds (daily, weekly, monthly).
    """

    kinds: tuple[str, ...]
    open: Callable[[str], Any]
    locate: Callable[[str, str], tuple[Any, str]]
    listing: Callable[[Any], list]
    create: Callable[..., Any]
    verify: Callable[[Any, str], Any]
    restore: Callable[..., Any]
    prune: Callable[..., Any]
    leftovers: Callable[[Any, Any, datetime], list]
    folder_leftovers: Callable[[Path], list]
    remove_leftover: Callable[[Any, Any], None]
    export: Callable[..., Any]
    verify_export: Callable[[Path], Any]
    manifest_path: Callable[[Path], Path]


def anchor_backup(notary: Notary, created: Any, *, now: datetime, key: bytes, retention_days: int) -> Anchored:
    """A signed anchor of a new backup's head (its manifest's reach and chain head), written beside it."""
    m = created.manifest
    return anchor_head(notary, m.reach, m.chain_head, target=f"{created.where}/anchor.json", now=now,
                       store_name=m.source or "", key=key, retention_days=retention_days)


def leftovers_of(shelf: BackupShelf, archives: Any, store_location: Any, now: datetime) -> tuple[list, str | None]:
    """(leftovers, a note when the store could not be searched) of killed backups and restores.

    An unreachable PostgreSQL must not hide what the destination holds: its leftovers are still listed.
    """
    try:
        return shelf.leftovers(archives, store_location, now), None
    except Exception as exc:  # noqa: BLE001 - the store's part is reported in the note
        root = getattr(archives, "root", None)
        return ((shelf.folder_leftovers(root) if root is not None else []),
                f"restore leftovers in {store_location.redacted()} not checked: {exc}")
