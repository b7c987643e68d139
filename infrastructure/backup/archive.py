"""The archive format: an events file (Parquet or JSONL) and a manifest.

A backup archive is a directory::

    tradecore-20261124T030000Z-daily/
        events.parquet        (or events.jsonl.gz)
        manifest.json         written last: an archive without it is incomplete

An auditor's export is one events file with ``<file>.manifest.json`` beside it.
Both events files hold, per event, the notification id, originator id and
version, topic, the stored bytes verbatim and the chain link stored with the
event, so a reader can recompute the chain (see eventstore/chain.py) from the
manifest's ``chain_start`` (the link before the first event: zeros for a full
backup, the parent's head for an incremental one) to its ``chain_head``.

Everything is written under a temporary name with mode 0600, fsynced, then
renamed: a crash leaves nothing that looks complete.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from application.errors import ArchiveProblem  # defined there (api/ maps it); this path stays valid
from infrastructure.backup.rows import SCHEMA, rows_to_batch
from infrastructure.eventstore.chain import GENESIS

FORMAT = "tradecore-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EVENTS_FILES = {"parquet": "events.parquet", "jsonl": "events.jsonl.gz"}
READ_BATCH = 100_000


@dataclass
class FileEntry:
    """One file of an archive: its name, sha256, size and row count."""

    name: str
    sha256: str
    bytes: int
    rows: int


@dataclass
class Manifest:
    """What an archive holds and how to check it."""

    purpose: str  # "backup" | "audit-export"
    name: str
    created_at: str
    events_format: str  # "parquet" | "jsonl"
    event_count: int
    first_id: int | None
    last_id: int | None
    chain_start: str
    chain_head: str
    files: list[FileEntry]
    kind: str | None = None  # daily | weekly | monthly
    parent: str | None = None
    parent_last_id: int | None = None
    source: str | None = None
    code_version: str | None = None
    settings: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    manifest_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def incremental(self) -> bool:
        return self.parent is not None

    @property
    def reach(self) -> int:
        """The last notification id this archive brings the log to (an empty incremental: its parent's)."""
        return self.last_id if self.last_id is not None else self.parent_last_id or 0

    def _canonical(self) -> bytes:
        data = asdict(self)
        data.pop("manifest_sha256")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def to_bytes(self) -> bytes:
        """The manifest as JSON, sealed with the sha256 of its own content."""
        self.manifest_sha256 = hashlib.sha256(self._canonical()).hexdigest()
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Manifest:
        """Parse and check a manifest; a bad one raises ArchiveProblem naming it."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveProblem(f"{where}: the manifest is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArchiveProblem(f"{where}: not a tradecore archive manifest (format {data.get('format')!r})"
                                 if isinstance(data, dict) else f"{where}: not a tradecore archive manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise ArchiveProblem(f"{where}: format version {data.get('format_version')!r} is not supported "
                                 f"(this tradecore reads version {FORMAT_VERSION})")
        try:
            data["files"] = [FileEntry(**f) for f in data["files"]]
            manifest = cls(**data)
        except (TypeError, KeyError) as exc:
            raise ArchiveProblem(f"{where}: the manifest is missing or has unknown fields ({exc})") from None
        if hashlib.sha256(manifest._canonical()).hexdigest() != manifest.manifest_sha256:
            raise ArchiveProblem(f"{where}: the manifest's own checksum does not match (the manifest was edited or damaged)")
        return manifest


# --- writing -------------------------------------------------------------------------


def private_file(path: Path) -> BinaryIO:
    """A new file readable by its owner only (0600), opened for binary writing."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    return os.fdopen(fd, "wb")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(final: Path) -> Path:
    """A hidden sibling name for writing ``final`` (never taken for a complete archive)."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")


class EventsWriter:
    """Streams record batches into one events file, counting rows and keeping the last link."""

    def __init__(self, path: Path, events_format: str, *, compress: bool = True, gzip_level: int = 6,
                 parquet_form: tuple[pa.Schema, Any] | None = None):
        # parquet_form: (schema, transform of each storage batch) for a Parquet file in another form
        # (the auditor's typed columns); backups always keep the storage form.
        if events_format not in EVENTS_FILES:
            raise ValueError(f"events format must be parquet or jsonl, not {events_format!r}")
        self.path = path
        self.events_format = events_format
        self._file = private_file(path)
        self._hash = hashlib.sha256()
        self.rows = 0
        self.first_id: int | None = None
        self.last_id: int | None = None
        self.last_link: bytes | None = None
        if events_format == "parquet":
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="tradecore-archive")
            self._pending: Future | None = None
            self._sink: Any = _HashingFile(self._file, self._hash)
            schema, self._transform = parquet_form or (SCHEMA, None)
            self._parquet = pq.ParquetWriter(self._sink, schema, compression="zstd", compression_level=1,
                                             use_dictionary=["topic"], write_statistics=["notification_id"])
        else:
            self._sink = _HashingFile(self._file, self._hash)
            self._text = gzip.GzipFile(fileobj=self._sink, mode="wb", compresslevel=gzip_level, mtime=0) if compress else self._sink

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        ids = batch.column(0)
        if self.first_id is None:
            self.first_id = ids[0].as_py()
        self.last_id = ids[-1].as_py()
        self.last_link = batch.column(5)[-1].as_py()
        self.rows += batch.num_rows
        if self.events_format == "parquet":
            # Compression and writing release the GIL: one batch is written while the next is read.
            self._wait()
            if self._transform is not None:
                batch = self._transform(batch)
            self._pending = self._pool.submit(self._parquet.write_batch, batch)
            return
        self._text.write(b"".join(_jsonl_lines(batch)))

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> FileEntry:
        """Finish, flush and fsync the file; its entry for the manifest."""
        if self.events_format == "parquet":
            self._wait()
            self._pool.shutdown()
            self._parquet.close()
        elif self._text is not self._sink:
            self._text.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return FileEntry(self.path.name, self._hash.hexdigest(), self._sink.size, self.rows)

    def abort(self) -> None:
        try:
            if self.events_format == "parquet":
                self._pool.shutdown(wait=True)
                self._parquet.close()
        except Exception:  # noqa: BLE001 - the file is discarded anyway
            pass
        self._file.close()


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes what passes through (one read less for the checksum)."""

    def __init__(self, file: BinaryIO, digest: Any):
        self._file, self._digest, self.size = file, digest, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._file.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:  # the owner closes the real file after fsync
        pass

    @property
    def closed(self) -> bool:
        return False


def _jsonl_lines(batch: pa.RecordBatch) -> Iterator[bytes]:
    cols = [batch.column(i).to_pylist() for i in range(6)]
    dumps = orjson.dumps
    for nid, oid, version, topic, state, link in zip(*cols):
        row: dict[str, Any] = {"notification_id": nid, "originator_id": oid, "originator_version": version, "topic": topic}
        try:
            row["state"] = state.decode("utf-8")
        except UnicodeDecodeError:
            row["state_b64"] = base64.b64encode(state).decode()
        row["link"] = link.hex() if link is not None else None
        yield dumps(row) + b"\n"


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write a manifest under a temporary name, fsync it and rename it into place."""
    tmp = temporary_name(path)
    with private_file(tmp) as f:
        f.write(manifest.to_bytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# --- reading and checking --------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_files(folder: Path, manifest: Manifest, where: str) -> None:
    """Every file the manifest lists is there, with its size and sha256."""
    for entry in manifest.files:
        path = folder / entry.name
        if not path.is_file():
            raise ArchiveProblem(f"{where}: file {entry.name} is missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise ArchiveProblem(f"{where}: file {entry.name} is {size} bytes, the manifest says {entry.bytes} (truncated or appended to)")
        if sha256_file(path) != entry.sha256:
            raise ArchiveProblem(f"{where}: file {entry.name} fails its sha256 checksum (damaged or edited)")


def _row_groups_read_ahead(parquet: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    """The file's record batches, row group by row group, the next group decoded in a thread while the caller
    works on this one (decompression and decoding release the GIL)."""
    groups = parquet.metadata.num_row_groups
    if groups == 0:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="tradecore-archive-read") as pool:
        pending = pool.submit(parquet.read_row_group, 0)
        for group in range(groups):
            table = pending.result()
            if group + 1 < groups:
                pending = pool.submit(parquet.read_row_group, group + 1)
            yield from table.to_batches()


def read_events(path: Path, events_format: str, batch_size: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
    """Record batches of SCHEMA from an events file."""
    if events_format == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise ArchiveProblem(f"{path.name} is not a readable Parquet file ({exc})") from None
        if not parquet.schema_arrow.equals(SCHEMA):
            raise ArchiveProblem(f"{path.name} has columns {parquet.schema_arrow.names}, expected {SCHEMA.names}")
        try:
            yield from _row_groups_read_ahead(parquet)
        except (pa.ArrowException, OSError) as exc:
            raise ArchiveProblem(f"{path.name} cannot be read to the end ({exc})") from None
        return
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    columns: list[list] = [[], [], [], [], [], []]
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    row = orjson.loads(line)
                    state = row["state"].encode() if "state" in row else base64.b64decode(row["state_b64"])
                    values = (row["notification_id"], row["originator_id"], row["originator_version"], row["topic"],
                              state, bytes.fromhex(row["link"]) if row.get("link") else None)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ArchiveProblem(f"{path.name} line {number} is not an event row ({exc})") from None
                for column, value in zip(columns, values):
                    column.append(value)
                if len(columns[0]) >= batch_size:
                    yield rows_to_batch(*columns)
                    columns = [[], [], [], [], [], []]
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveProblem(f"{path.name} cannot be read to the end ({exc})") from None
    if columns[0]:
        yield rows_to_batch(*columns)

