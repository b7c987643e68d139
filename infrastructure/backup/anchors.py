"""Where anchors are kept outside the store: a file, a directory, or S3 (with Object Lock when the bucket has it).

Targets (``write_anchor``):
    FILE.json                  that file (written atomically)
    DIR                        DIR/anchor-<UTC time>-<notification id>.json
    s3://bucket/prefix         prefix/anchor-<UTC time>-<notification id>.json
    s3://bucket/prefix/X.json  that key

Sources (``read_anchors``): a file; a directory (every ``anchor*.json`` in it and in
its archive folders, so a backup destination's anchors are all found); an S3 prefix
(every ``anchor*.json`` key under it).

On a bucket with Object Lock enabled the anchor is written with a retention period
(the bucket's default rule's mode and length when it has one, else COMPLIANCE for
``retention_days``), so not even the account that wrote it can delete or replace it
before then.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from infrastructure.backup.archive import fsync_dir, temporary_name
from infrastructure.backup.storage import StorageError
from infrastructure.eventstore.anchor import Anchor


@dataclass(frozen=True)
class WrittenAnchor:
    """Where an anchor went, and its Object Lock retention (None when the bucket has none)."""

    where: str
    retain_until: str | None = None
    lock_mode: str | None = None


def anchor_file_name(anchor: Anchor, now: datetime) -> str:
    return f"anchor-{now.strftime('%Y%m%dT%H%M%SZ')}-{anchor.notification_id}.json"


def _split_s3(target: str) -> tuple[str, str]:
    bucket, _, prefix = target[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError(f"{target!r}: no bucket after s3://")
    return bucket, prefix.strip("/")


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError:
        raise StorageError("S3 anchors need boto3: pip install 'tradecore[s3]'") from None
    return boto3.client("s3")


def _s3_call(target: str, what: str, fn: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"{target}: {what} failed: {exc}") from None


def _object_lock(client: Any, bucket: str, target: str) -> tuple[str, int | None, int | None] | None:
    """(mode, days, years) of the bucket's Object Lock default, or None when the bucket has no Object Lock."""
    from botocore.exceptions import ClientError

    try:
        config = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"):
            return None
        raise StorageError(f"{target}: reading the bucket's Object Lock configuration failed: {exc}") from None
    if config.get("ObjectLockEnabled") != "Enabled":
        return None
    default = config.get("Rule", {}).get("DefaultRetention", {})
    return default.get("Mode", "COMPLIANCE"), default.get("Days"), default.get("Years")


def write_anchor(anchor: Anchor, target: str, now: datetime, retention_days: int) -> WrittenAnchor:
    """Write the anchor to a file, a directory or S3 (see the module docstring); never overwrite one."""
    data = anchor.to_bytes()
    if target.startswith("s3://"):
        bucket, prefix = _split_s3(target)
        key = prefix if prefix.endswith(".json") else "/".join(p for p in (prefix, anchor_file_name(anchor, now)) if p)
        client = _s3_client()
        extra: dict[str, Any] = {}
        lock = _object_lock(client, bucket, target)
        written = WrittenAnchor(f"s3://{bucket}/{key}")
        if lock is not None:
            mode, days, years = lock
            length = timedelta(days=days) if days else timedelta(days=365 * years) if years else timedelta(days=retention_days)
            until = now + length
            extra = {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}
            written = WrittenAnchor(written.where, until.isoformat(), mode)
        try:
            _s3_call(target, "checking for an existing anchor", client.head_object, Bucket=bucket, Key=key)
        except StorageError as exc:
            if "404" not in str(exc) and "Not Found" not in str(exc):
                raise
        else:
            raise StorageError(f"{written.where} already exists; anchors are never replaced")
        _s3_call(target, "uploading the anchor", client.put_object, Bucket=bucket, Key=key, Body=data,
                 ContentType="application/json", ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(), **extra)
        return written
    if "://" in target:
        raise StorageError(f"{target!r}: an anchor goes to a file, a directory or s3://bucket/prefix")
    path = Path(target)
    if path.is_dir():
        path = path / anchor_file_name(anchor, now)
    if path.exists():
        raise StorageError(f"{path} already exists; anchors are never replaced (name another file)")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        with open(temporary, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)  # fails if someone wrote the same name meanwhile: never replace an anchor
    except FileExistsError:
        raise StorageError(f"{path} already exists; anchors are never replaced (name another file)") from None
    except OSError as exc:
        raise StorageError(f"cannot write the anchor {path}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return WrittenAnchor(str(path))


def read_anchors(source: str) -> list[tuple[str, bytes]]:
    """(where, bytes) of every anchor at ``source`` (see the module docstring); none found raises StorageError."""
    found: list[tuple[str, bytes]] = []
    if source.startswith("s3://"):
        bucket, prefix = _split_s3(source)
        client = _s3_client()
        if prefix.endswith(".json"):
            body = _s3_call(source, "reading the anchor", client.get_object, Bucket=bucket, Key=prefix)
            return [(source, body["Body"].read())]
        token = None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix + "/" if prefix else ""}
            if token:
                kwargs["ContinuationToken"] = token
            page = _s3_call(source, "listing anchors", client.list_objects_v2, **kwargs)
            for obj in page.get("Contents", []):
                base = obj["Key"].rsplit("/", 1)[-1]
                if base.startswith("anchor") and base.endswith(".json") and "/." not in "/" + obj["Key"]:
                    body = _s3_call(source, f"reading {obj['Key']}", client.get_object, Bucket=bucket, Key=obj["Key"])
                    found.append((f"s3://{bucket}/{obj['Key']}", body["Body"].read()))
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
    else:
        path = Path(source)
        if path.is_file():
            found.append((str(path), path.read_bytes()))
        elif path.is_dir():
            for candidate in sorted([*path.glob("anchor*.json"), *path.glob("*/anchor*.json")]):
                if not any(part.startswith(".") for part in candidate.relative_to(path).parts):
                    found.append((str(candidate), candidate.read_bytes()))
        else:
            raise StorageError(f"no anchor at {source}: no such file or directory")
    if not found:
        raise StorageError(f"no anchor at {source} (anchor*.json)")
    return found
