"""Where archives live: a local directory or an S3 prefix (the ``tradecore[s3]`` extra).

Both keep one archive per folder (``<dest>/<name>/``) and treat a folder
without ``manifest.json`` as incomplete: the manifest is written (or
uploaded) last and deleted first. Archives are built in a local staging
folder; ``publish`` makes them visible in one step (a rename on disk; on S3
the manifest upload, after every other file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from application.errors import StorageError  # defined there (api/ maps it); this path stays valid
from infrastructure.backup.archive import MANIFEST, ArchiveProblem, Manifest, fsync_dir, temporary_name


@dataclass(frozen=True)
class ArchiveInfo:
    """One archive in a destination: its manifest (None when incomplete) and size on disk."""

    name: str
    manifest: Manifest | None
    size: int
    problem: str | None = None


class Archives(Protocol):
    """A place holding archives."""

    location: str

    def names(self) -> list[str]: ...
    def read_manifest(self, name: str) -> Manifest | None: ...
    def size(self, name: str) -> int: ...
    def staging(self, name: str) -> Path: ...
    def publish(self, staging: Path, name: str) -> None: ...
    def local_copy(self, name: str) -> contextlib.AbstractContextManager[Path]: ...
    def delete(self, name: str) -> None: ...
    def where(self, name: str) -> str: ...


def list_archives(archives: Archives) -> list[ArchiveInfo]:
    """Every archive folder with its manifest, oldest first (incomplete ones included)."""
    out = []
    for name in archives.names():
        try:
            manifest, problem = archives.read_manifest(name), None
        except ArchiveProblem as exc:
            manifest, problem = None, str(exc)
        out.append(ArchiveInfo(name, manifest, archives.size(name), problem))
    out.sort(key=lambda a: ((a.manifest.created_at if a.manifest else ""), a.name))
    return out


class LocalArchives:
    """Archives in a local directory (created 0700)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)

    def where(self, name: str) -> str:
        return str(self.root / name)

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read_manifest(self, name: str) -> Manifest | None:
        path = self.root / name / MANIFEST
        if not path.is_file():
            return None
        return Manifest.from_bytes(path.read_bytes(), name)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def size(self, name: str) -> int:
        return sum(p.stat().st_size for p in (self.root / name).iterdir() if p.is_file())

    def staging(self, name: str) -> Path:
        self._ensure_root()
        folder = temporary_name(self.root / name)
        folder.mkdir(mode=0o700)
        return folder

    def publish(self, staging: Path, name: str) -> None:
        final = self.root / name
        if final.exists():
            raise StorageError(f"{final} already exists")
        fsync_dir(staging)
        os.rename(staging, final)
        fsync_dir(self.root)

    @contextlib.contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        folder = self.root / name
        if not folder.is_dir():
            raise ArchiveProblem(f"archive {name} not found in {self.root}")
        yield folder

    def delete(self, name: str) -> None:
        folder = self.root / name
        (folder / MANIFEST).unlink(missing_ok=True)  # first: a half-deleted archive is incomplete, never "complete"
        fsync_dir(folder)
        shutil.rmtree(folder)
        fsync_dir(self.root)


class S3Archives:
    """Archives under ``s3://bucket/prefix`` (boto3; credentials and AWS_ENDPOINT_URL from the environment)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            try:
                import boto3
            except ImportError:
                raise StorageError("S3 destinations need boto3: pip install 'tradecore[s3]'") from None
            client = boto3.client("s3")
        self.client = client

    def where(self, name: str) -> str:
        return f"{self.location}/{name}"

    def _key(self, name: str, file: str = "") -> str:
        return "/".join(p for p in (self.prefix, name, file) if p)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(what) from None
            raise StorageError(f"{self.location}: {what} failed: {exc}") from None
        except BotoCoreError as exc:
            raise StorageError(f"{self.location}: {what} failed: {exc}") from None

    def _objects(self, name: str) -> list[dict]:
        out, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self._key(name) + "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("listing", self.client.list_objects_v2, **kwargs)
            out += page.get("Contents", [])
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    def names(self) -> list[str]:
        names, token = [], None
        base = self.prefix + "/" if self.prefix else ""
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("listing", self.client.list_objects_v2, **kwargs)
            names += [p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return sorted(n for n in names if n and not n.startswith("."))
            token = page["NextContinuationToken"]

    def read_manifest(self, name: str) -> Manifest | None:
        try:
            body = self._call("reading the manifest", self.client.get_object, Bucket=self.bucket, Key=self._key(name, MANIFEST))
        except FileNotFoundError:
            return None
        return Manifest.from_bytes(body["Body"].read(), name)

    def exists(self, name: str) -> bool:
        return bool(self._objects(name))

    def size(self, name: str) -> int:
        return sum(o["Size"] for o in self._objects(name))

    def staging(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"tradecore-{name}-"))

    def publish(self, staging: Path, name: str) -> None:
        if self.exists(name):
            raise StorageError(f"{self.where(name)} already exists")
        files = sorted(p for p in staging.iterdir() if p.is_file())
        try:
            for path in sorted(files, key=lambda p: p.name == MANIFEST):  # the manifest last
                self._call(f"uploading {path.name}", self.client.upload_file, Filename=str(path), Bucket=self.bucket,
                           Key=self._key(name, path.name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        objects = self._objects(name)
        if not objects:
            raise ArchiveProblem(f"archive {name} not found in {self.location}")
        with tempfile.TemporaryDirectory(prefix="tradecore-restore-") as tmp:
            folder = Path(tmp) / name
            folder.mkdir(mode=0o700)
            for obj in objects:
                file = obj["Key"].rsplit("/", 1)[-1]
                self._call(f"downloading {file}", self.client.download_file, Bucket=self.bucket, Key=obj["Key"],
                           Filename=str(folder / file))
                os.chmod(folder / file, 0o600)
            yield folder

    def delete(self, name: str) -> None:
        objects = self._objects(name)
        for obj in sorted(objects, key=lambda o: not o["Key"].endswith("/" + MANIFEST)):  # the manifest first
            self._call(f"deleting {obj['Key']}", self.client.delete_object, Bucket=self.bucket, Key=obj["Key"])


def open_archives(dest: str) -> LocalArchives | S3Archives:
    """The destination named by a directory path or ``s3://bucket/prefix``."""
    if dest.startswith("s3://"):
        rest = dest[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StorageError(f"{dest!r}: no bucket after s3://")
        return S3Archives(bucket, prefix)
    if "://" in dest:
        raise StorageError(f"{dest!r}: a backup destination is a directory or s3://bucket/prefix")
    return LocalArchives(dest)


def locate_archive(archive: str, default_dest: str) -> tuple[LocalArchives | S3Archives, str]:
    """(destination, name) for an ARCHIVE argument.

    ``s3://bucket/prefix/NAME`` and a path to an archive folder name it
    directly; otherwise it is a name in the default destination, where
    ``latest`` means the newest complete archive.
    """
    if archive.startswith("s3://"):
        base, _, name = archive.rstrip("/").rpartition("/")
        if base == "s3:/" or not name:
            raise StorageError(f"{archive!r}: name an archive, s3://bucket/prefix/NAME")
        return open_archives(base), name
    path = Path(archive)
    if path.is_dir():
        return LocalArchives(path.resolve().parent), path.resolve().name
    archives = open_archives(default_dest)
    if archive == "latest":
        complete = [a for a in list_archives(archives) if a.manifest is not None]
        if not complete:
            raise StorageError(f"no complete archive in {archives.location}")
        return archives, max(complete, key=lambda a: (a.manifest.reach, a.manifest.created_at)).name
    return archives, archive
