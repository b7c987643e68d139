"""The auditor's export: a slice of the log in one file, checkable on its own.

``export_log`` writes the events (notification id, originator id and version,
topic, the stored JSON verbatim, the chain link) as JSONL (gzip when the file
name ends in ``.gz``) or Parquet, and ``<file>.manifest.json`` beside it
(count, first and last id, the link before the first event, the chain head,
the file's sha256). With ``--from``/``--to`` the slice is contiguous: from the
first event that occurred at or after FROM to the last one that occurred
before TO, with everything recorded between them, so its chain can be checked.

The Parquet form is the analyst's (``analyst.ANALYST_SCHEMA``: typed envelope columns,
canonical UUID text, the payload as JSON text, the link as hex); JSONL keeps one line per
stored row. ``verify_export`` needs nothing but the two files, and checks both forms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from infrastructure.backup.analyst import ANALYST_SCHEMA, to_analyst, to_storage
from infrastructure.backup.archive import (
    ArchiveProblem, EventsWriter, Manifest, check_files, fsync_dir, read_events, temporary_name,
    write_manifest,
)
from infrastructure.backup.walk import ChainWalk
from infrastructure.backup.rows import LogSnapshot


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def _time_range(snapshot: LogSnapshot, upto: int, start: datetime | None, end: datetime | None) -> tuple[int, int]:
    first, last = 0, 0
    for batch in snapshot.batches(0, upto):
        for nid, state in zip(batch.column(0).to_pylist(), batch.column(4).to_pylist()):
            occurred = datetime.fromisoformat(orjson.loads(state)["occurred_at"])
            if (start is None or occurred >= start) and (end is None or occurred < end):
                first = first or nid
                last = nid
    return first, last


@dataclass
class Exported:
    output: Path
    manifest: Manifest


def export_log(
    store: Any, output: Path, *, events_format: str, now: datetime, start: datetime | None = None,
    end: datetime | None = None, source: str | None = None, code_version: str | None = None,
) -> Exported:
    """Write the export and its manifest (each under a temporary name, fsynced, renamed)."""
    snapshot = LogSnapshot(store.recorder)
    upto = snapshot.max_id()
    first, last = (1, upto) if start is None and end is None else _time_range(snapshot, upto, start, end)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(output)
    form = (ANALYST_SCHEMA, to_analyst) if events_format == "parquet" else None
    writer = EventsWriter(tmp, events_format, compress=output.name.endswith(".gz"), parquet_form=form)
    try:
        chain_start = snapshot.link_before(first) if first else bytes(32)
        if first:
            for batch in snapshot.batches(first - 1, last):
                writer.write(batch)
        entry = writer.close()
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    entry.name = output.name
    os.replace(tmp, output)
    fsync_dir(output.parent)
    manifest = Manifest(
        purpose="audit-export", name=output.name, created_at=now.isoformat(), events_format=events_format,
        event_count=writer.rows, first_id=writer.first_id, last_id=writer.last_id, chain_start=chain_start.hex(),
        chain_head=(writer.last_link or chain_start).hex(), files=[entry], source=source, code_version=code_version,
        selection={"from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
                   "log_last_id": upto},
    )
    write_manifest(manifest_path(output), manifest)
    return Exported(output, manifest)


def _export_batches(path: Path, events_format: str, where: str):
    """Storage-form batches of an export: typed-column Parquet is checked against its payloads and converted."""
    if events_format == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ArchiveProblem(f"{where} is not a readable Parquet file ({exc})") from None
        if parquet.schema_arrow.equals(ANALYST_SCHEMA):
            try:
                for group in range(parquet.metadata.num_row_groups):
                    for batch in parquet.read_row_group(group).to_batches():
                        yield to_storage(batch, where)
            except (pa.ArrowException, OSError) as exc:
                raise ArchiveProblem(f"{where} cannot be read to the end ({exc})") from None
            return
    yield from read_events(path, events_format)  # JSONL, or a Parquet export in the storage form (older exports)


def verify_export(path: Path) -> Manifest:
    """Check an export against its manifest: checksum, row order, every chain link, counts and head."""
    where = path.name
    if not path.is_file():
        raise ArchiveProblem(f"{path}: no such export file")
    mpath = manifest_path(path)
    if not mpath.is_file():
        raise ArchiveProblem(f"{where}: its manifest {mpath.name} is missing")
    manifest = Manifest.from_bytes(mpath.read_bytes(), mpath.name)
    if manifest.purpose != "audit-export" or len(manifest.files) != 1:
        raise ArchiveProblem(f"{mpath.name}: not an audit export manifest")
    entry = manifest.files[0]
    if entry.name != path.name:
        raise ArchiveProblem(f"{mpath.name} describes {entry.name}, not {path.name}")
    check_files(path.parent, manifest, where)
    walk = ChainWalk(bytes.fromhex(manifest.chain_start), 0, where)
    for batch in _export_batches(path, manifest.events_format, where):
        walk.feed(batch)
    if walk.count != manifest.event_count:
        raise ArchiveProblem(f"{where}: holds {walk.count} events, the manifest says {manifest.event_count}")
    if manifest.event_count and (walk.first_id != manifest.first_id or walk.last_id != manifest.last_id):
        raise ArchiveProblem(
            f"{where}: holds ids {walk.first_id}..{walk.last_id}, the manifest says {manifest.first_id}..{manifest.last_id}"
        )
    if walk.head.hex() != manifest.chain_head:
        raise ArchiveProblem(f"{where}: the recomputed chain head differs from the manifest's")
    return manifest
