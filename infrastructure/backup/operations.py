"""Backup create / verify / restore / prune over a store and a destination.

The store is passed in opened (a TradingApplication); ``open_store`` (the
composition root's) is passed where a restore must open the target.
Problems raise ``ArchiveProblem`` (an archive is wrong), ``RestoreRefused``
(the target cannot take it), ``BackupRefused`` (the log cannot be backed up
as asked) or ``StorageError`` (the destination cannot be used).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from application.errors import BackupRefused  # defined there (api/ maps it); this path stays valid
from infrastructure.backup.archive import (
    EVENTS_FILES, MANIFEST, ArchiveProblem, EventsWriter, Manifest, check_files, read_events, write_manifest,
)
from infrastructure.backup.walk import ChainWalk, RowOrder
from infrastructure.backup.loading import open_loader
from infrastructure.backup.rows import LogSnapshot
from infrastructure.backup.storage import Archives, list_archives
from application.trading_app import paused_gc
from infrastructure.eventstore.chain import GENESIS

KINDS = ("daily", "weekly", "monthly")


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def _fresh_name(archives: Archives, base: str) -> str:
    taken = set(archives.names())
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def latest_archive(archives: Archives) -> tuple[str, Manifest] | None:
    """The complete archive that reaches furthest into the log (newest on a tie)."""
    complete = [(a.name, a.manifest) for a in list_archives(archives) if a.manifest is not None]
    if not complete:
        return None
    return max(complete, key=lambda item: (item[1].reach, item[1].created_at))


def newest_archive(archives: Archives) -> tuple[str, Manifest] | None:
    """The complete archive written last (by its manifest's time)."""
    complete = [(a.name, a.manifest) for a in list_archives(archives) if a.manifest is not None]
    if not complete:
        return None
    return max(complete, key=lambda item: (item[1].created_at, item[0]))


def rewind_problem(snapshot: LogSnapshot, upto: int, newest: tuple[str, Manifest] | None) -> tuple[str, dict] | None:
    """(why, what) when the log no longer extends the newest backup: shorter than it, or different at its head."""
    if newest is None:
        return None
    name, manifest = newest
    reach = manifest.reach
    if reach > upto:
        why = (f"the log ends at notification {upto} but the newest backup {name} reaches {reach}: "
               "the log was cut or rolled back since")
    elif reach and snapshot.link_at(reach) != bytes.fromhex(manifest.chain_head):
        why = (f"the log differs from the newest backup {name} at notification {reach} (its chain link differs): "
               "the history was rewritten since")
    else:
        return None
    return why, {"previous_backup": name, "previous_reach": reach, "previous_head": manifest.chain_head, "log_ends_at": upto}


@dataclass
class Created:
    """A finished backup: its name, where it is, and its manifest."""

    name: str
    where: str
    manifest: Manifest
    note: str | None = None


def create_backup(
    store: Any, archives: Archives, *, kind: str, now: datetime, events_format: str = "parquet", since_last: bool = False,
    source: str | None = None, code_version: str | None = None, settings: dict | None = None,
    accept_rewind: str | None = None,
) -> Created:
    """Snapshot the log (up to the last id committed now) into a new archive.

    With ``since_last`` only the events after the newest archive are stored,
    and that archive becomes the parent; when there is none a full backup is
    taken (and ``note`` says so).

    A log shorter than the newest backup, or different from it at that backup's
    head, is refused (BackupRefused) unless ``accept_rewind`` gives the reason,
    which the manifest then records (``extra.accepted_rewind``).
    """
    if kind not in KINDS:
        raise BackupRefused(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    snapshot = LogSnapshot(store.recorder)
    upto = snapshot.max_id()
    parent: tuple[str, Manifest] | None = None
    note = None
    extra: dict = {}
    if not since_last and (rewound := rewind_problem(snapshot, upto, newest_archive(archives))) is not None:
        why, what = rewound
        if not (accept_rewind or "").strip():
            raise BackupRefused(f"{why}; run `tradecore audit verify`, and if this is intended (a restore to an "
                                "earlier point) pass --accept-rewind REASON, which the new manifest records")
        extra["accepted_rewind"] = {"reason": accept_rewind.strip(), "problem": why, **what}
        note = f"accepted a rewind ({accept_rewind.strip()}): {why}"
    if since_last:
        parent = latest_archive(archives)
        if parent is None:
            note = f"no previous backup in {archives.location}: took a full backup"
        else:
            pname, pm = parent
            reach = pm.reach
            if reach > upto:
                raise BackupRefused(
                    f"the previous backup {pname} reaches notification {reach} but the log ends at {upto}: "
                    "this is not the log it was taken from; take a full backup (without --since-last)"
                )
            if snapshot.link_at(reach) != bytes.fromhex(pm.chain_head):
                raise BackupRefused(
                    f"the log no longer matches the previous backup {pname} at notification {reach} "
                    "(its chain link differs): run `tradecore audit verify`, and take a full backup"
                )
    after = 0
    chain_start = GENESIS
    if parent is not None:
        after = parent[1].reach
        chain_start = bytes.fromhex(parent[1].chain_head)
    name = _fresh_name(archives, f"tradecore-{_stamp(now)}-{kind}{'-incr' if parent else ''}")
    staging = archives.staging(name)
    try:
        writer = EventsWriter(staging / EVENTS_FILES[events_format], events_format)
        try:
            with paused_gc():
                for batch in snapshot.batches(after, upto):
                    if batch.column(5).null_count:
                        missing = pc.filter(batch.column(0), pc.is_null(batch.column(5)))[0].as_py()
                        raise BackupRefused(
                            f"notification {missing} has no chain link: the log was changed behind the application; "
                            "run `tradecore audit verify` before backing it up"
                        )
                    writer.write(batch)
                entry = writer.close()
        except BaseException:
            writer.abort()
            raise
        manifest = Manifest(
            purpose="backup", name=name, created_at=now.isoformat(), events_format=events_format,
            event_count=writer.rows, first_id=writer.first_id, last_id=writer.last_id,
            chain_start=chain_start.hex(), chain_head=(writer.last_link or chain_start).hex(), files=[entry],
            kind=kind, parent=parent[0] if parent else None, parent_last_id=after if parent else None,
            source=source, code_version=code_version, settings=settings,
            selection={"after_id": after, "upto_id": upto}, extra=extra,
        )
        write_manifest(staging / MANIFEST, manifest)
        archives.publish(staging, name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Created(name, archives.where(name), manifest, note)


# --- verify ---------------------------------------------------------------------------


@dataclass
class Verified:
    """A verified archive: the chain of archives checked (root first) and what they hold."""

    chain: list[str] = field(default_factory=list)
    event_count: int = 0
    first_id: int | None = None
    last_id: int | None = None
    chain_head: str = GENESIS.hex()


def lineage(archives: Archives, name: str) -> list[tuple[str, Manifest]]:
    """The archive and its parents, root (full) first; a missing or broken link raises ArchiveProblem."""
    out: list[tuple[str, Manifest]] = []
    seen: set[str] = set()
    current: str | None = name
    child: tuple[str, Manifest] | None = None
    while current is not None:
        if current in seen:
            raise ArchiveProblem(f"{name}: its parents form a loop at {current}")
        seen.add(current)
        manifest = archives.read_manifest(current)
        if manifest is None:
            if child is None:
                if current in archives.names():
                    raise ArchiveProblem(f"{current}: no manifest: the backup did not finish (incomplete archive)")
                raise ArchiveProblem(f"archive {current} not found in {archives.location}")
            raise ArchiveProblem(f"{child[0]}: its parent archive {current} is missing from {archives.location}")
        if manifest.purpose != "backup":
            raise ArchiveProblem(f"{current}: not a backup archive (it is an {manifest.purpose})")
        if child is not None:
            cm = child[1]
            reach = manifest.reach
            if reach != cm.parent_last_id or manifest.chain_head != cm.chain_start:
                raise ArchiveProblem(
                    f"{child[0]}: does not continue its parent {current} (parent ends at {reach}, "
                    f"the child starts after {cm.parent_last_id}, or the chain links differ)"
                )
        out.append((current, manifest))
        child = (current, manifest)
        current = manifest.parent
    out.reverse()
    return out


def _check_rows(folder: Path, name: str, manifest: Manifest, walk: ChainWalk) -> None:
    """Checksums, then every row's chain link, then the manifest's counts and head."""
    walk.where = name
    before = walk.count
    check_files(folder, manifest, name)
    for entry in manifest.files:
        for batch in read_events(folder / entry.name, manifest.events_format):
            walk.feed(batch)
    held = walk.count - before
    if held != manifest.event_count:
        raise ArchiveProblem(f"{name}: holds {held} events, the manifest says {manifest.event_count} (truncated?)")
    if manifest.event_count and walk.last_id != manifest.last_id:
        raise ArchiveProblem(f"{name}: ends at notification {walk.last_id}, the manifest says {manifest.last_id}")
    if walk.head.hex() != manifest.chain_head:
        raise ArchiveProblem(f"{name}: the recomputed chain head differs from the manifest's")


def verify_archive(archives: Archives, name: str) -> Verified:
    """Check an archive and, for an incremental, every parent: manifests, checksums and the whole chain."""
    chain = lineage(archives, name)
    walk = ChainWalk()
    root = chain[0][1]
    if root.chain_start != GENESIS.hex():
        raise ArchiveProblem(f"{chain[0][0]}: a full backup must start the chain at its beginning")
    with contextlib.ExitStack() as stack:
        for archive_name, manifest in chain:
            _check_rows(stack.enter_context(archives.local_copy(archive_name)), archive_name, manifest, walk)
    return Verified([n for n, _ in chain], walk.count, chain[0][1].first_id, walk.last_id or None, walk.head.hex())


# --- restore --------------------------------------------------------------------------


@dataclass
class Restored:
    """What a restore wrote: events, last id, chain head, archives used, and where the old store went."""

    events: int
    last_id: int
    chain_head: str
    archives: list[str]
    moved_aside: str | None
    until_id: int | None


def _cutoff_for_time(folders: dict[str, Path], chain: list[tuple[str, Manifest]], until: datetime) -> int:
    """The last notification id of an event that occurred at or before ``until`` (as projections/reading/access.py counts it)."""
    import orjson

    best = 0
    for name, manifest in chain:
        for entry in manifest.files:
            for batch in read_events(folders[name] / entry.name, manifest.events_format):
                for nid, state in zip(batch.column(0).to_pylist(), batch.column(4).to_pylist()):
                    if datetime.fromisoformat(orjson.loads(state)["occurred_at"]) <= until:
                        best = nid
    return best


def _load(folders: dict[str, Path], chain: list[tuple[str, Manifest]], loader: Any, walk: ChainWalk | RowOrder,
          cutoff: int | None) -> None:
    """Feed every row of the chain of archives (up to ``cutoff``) through the walk into the loader (a ChainWalk
    checks each archive's head as it goes; after a RowOrder, ``_check_heads`` does once the store is verified)."""
    for archive_name, manifest in chain:
        if cutoff is not None and manifest.first_id is not None and manifest.first_id > cutoff:
            return
        walk.where = archive_name
        for entry in manifest.files:
            for batch in read_events(folders[archive_name] / entry.name, manifest.events_format):
                if cutoff is not None and batch.num_rows and batch.column(0)[batch.num_rows - 1].as_py() > cutoff:
                    batch = batch.filter(pc.less_equal(batch.column(0), pa.scalar(cutoff, pa.int64())))
                    if batch.num_rows:
                        loader.append(walk.feed(batch))
                    return  # ids ascend: nothing after this batch is wanted
                loader.append(walk.feed(batch))
        if isinstance(walk, ChainWalk) and (cutoff is None or cutoff >= manifest.reach) \
                and walk.head.hex() != manifest.chain_head:
            raise ArchiveProblem(f"{archive_name}: the recomputed chain head differs from the manifest's")


def _check_heads(chain: list[tuple[str, Manifest]], loader: Any, cutoff: int | None) -> None:
    """Each archive restored whole ends at its manifest's head: the verified store's link at its reach."""
    for archive_name, manifest in chain:
        if manifest.event_count and (cutoff is None or cutoff >= manifest.reach):
            link = loader.stored_link(manifest.reach)
            if link is None or link.hex() != manifest.chain_head:
                raise ArchiveProblem(f"{archive_name}: the recomputed chain head differs from the manifest's")


def restore_archive(
    archives: Archives, name: str, target_url: str, *, open_store: Callable[[str], Any], now: datetime,
    until_id: int | None = None, until_time: datetime | None = None, force: bool = False,
) -> Restored:
    """Restore an archive (and its parents) into an empty store, keeping ids; verify the chain there."""
    chain = lineage(archives, name)
    with contextlib.ExitStack() as stack:  # an S3 archive is downloaded once, to a private temporary folder
        folders = {n: stack.enter_context(archives.local_copy(n)) for n, _ in chain}
        for archive_name, manifest in chain:  # cheap checks before the target is touched
            check_files(folders[archive_name], manifest, archive_name)
        cutoff = until_id
        if until_time is not None:
            cutoff = _cutoff_for_time(folders, chain, until_time)
        if cutoff is not None and cutoff <= 0:
            raise ArchiveProblem(f"nothing to restore: no event at or before {until_time or until_id}")
        loader = open_loader(target_url, force=force, stamp=_stamp(now), open_store=open_store)
        walk = RowOrder() if loader.checks_links else ChainWalk()
        try:
            with paused_gc():
                _load(folders, chain, loader, walk, cutoff)
                # Verified where it was built (every link recomputed from the rows as stored, count and
                # head equal to the archive's); only then does it take the target's place, atomically.
                loader.seal_and_check(walk)
            if isinstance(walk, RowOrder):
                _check_heads(chain, loader, cutoff)
            loader.replace()
        except BaseException:
            loader.abort()
            raise
    return Restored(walk.count, walk.last_id, walk.head.hex(), [n for n, _ in chain], loader.moved_to, cutoff)


# --- prune ----------------------------------------------------------------------------


def prune(archives: Archives, keep_counts: dict[str, int], *, dry_run: bool = False):
    """Apply the retention plan (see retention.py); returns it. ``dry_run`` deletes nothing."""
    from infrastructure.backup.retention import plan_prune

    listed = list_archives(archives)
    plan = plan_prune({a.name: a.manifest for a in listed}, keep_counts)
    if not dry_run:
        for name in plan.delete:
            archives.delete(name)
    return plan
