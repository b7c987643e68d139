"""What a killed backup or restore leaves behind, found and removed on request.

- ``backup create`` builds an archive in a hidden ``<dest>/.<name>.partial-<pid>-<random>``
  folder and renames it when complete; a kill leaves the folder.
- ``backup restore`` to SQLite builds ``.<file>.partial-<pid>-<random>`` beside the target
  (with its -wal/-shm/-journal); to PostgreSQL, a ``tc_restore_<time>_<random>`` schema.

Nothing here touches a complete archive, the target store, or a leftover that may still be
in use: a hidden file or folder whose process is alive on this machine, or a staging schema
with a lock held on it, whose process (named in the schema's comment) is alive on this machine,
or, made by another machine, in the last ``STAGING_GRACE``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from infrastructure.eventstore.store import StoreLocation, _pg_connect

PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-[0-9a-f]+$")
STAGING = re.compile(r"^tc_restore_(?P<stamp>\d{8}t\d{6}z)_[0-9a-f]+$")
STAGING_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class Leftover:
    """One leftover: what made it, where it is, its size, and whether it may still be in use."""

    kind: str  # "backup" | "restore file" | "restore schema"
    where: str
    size: int | None
    in_use: bool

    def describe(self) -> str:
        size = f", {self.size} bytes" if self.size is not None else ""
        busy = " (in use: its process is still running)" if self.in_use else ""
        return f"{self.kind} leftover {self.where}{size}{busy}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def backup_leftovers(root: Path) -> list[Leftover]:
    """Hidden partial archive folders (and partial anchor files) in a local backup destination."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        match = PARTIAL.match(path.name)
        if match:
            found.append(Leftover("backup", str(path), _size(path), _alive(int(match["pid"]))))
    return found


def sqlite_restore_leftovers(store_file: Path) -> list[Leftover]:
    """Hidden partial store files a restore left beside the SQLite store."""
    folder = store_file.parent
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f".{store_file.name}.partial-*")):
        match = PARTIAL.match(path.name)
        if match and path.is_file():
            companions = [Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal") if Path(f"{path}{s}").exists()]
            size = path.stat().st_size + sum(c.stat().st_size for c in companions)
            found.append(Leftover("restore file", str(path), size, _alive(int(match["pid"]))))
    return found


def postgres_restore_leftovers(location: StoreLocation, now: datetime) -> list[Leftover]:
    """Staging schemas a restore left in the store's database."""
    found = []
    with _pg_connect(location) as conn:
        schemas = conn.execute(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname LIKE 'tc\\_restore\\_%'"
        ).fetchall()
        for schema, comment in schemas:
            match = STAGING.match(schema)
            if not match:
                continue
            made = datetime.strptime(match["stamp"].upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            owner = _owner(comment)
            locked = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
                (schema,),
            ).fetchone()[0]
            size = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()[0]
            if owner is not None and owner[0] == socket.gethostname():  # its process is on this machine: ask it
                busy = _alive(owner[1])
            else:
                busy = now - made < STAGING_GRACE
            found.append(Leftover("restore schema", f"schema {schema}", int(size), bool(locked) or busy))
    return found


def staging_comment() -> str:
    """Who builds a staging schema (host and process), so a later prune can tell whether it is still in use."""
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid()})


def _owner(comment: str | None) -> tuple[str, int] | None:
    try:
        data = json.loads(comment or "")
        return str(data["host"]), int(data["pid"])
    except (ValueError, KeyError, TypeError):
        return None


def find_leftovers(archives: Any, store: StoreLocation | None, now: datetime) -> list[Leftover]:
    """Every leftover of the backup destination (local ones) and of restores into ``store``."""
    found: list[Leftover] = []
    root = getattr(archives, "root", None)
    if root is not None:
        found += backup_leftovers(Path(root))
    if store is not None and store.backend == "sqlite" and not store.is_memory:
        found += sqlite_restore_leftovers(Path(store.sqlite_path))
    elif store is not None and store.backend == "postgresql":
        found += postgres_restore_leftovers(store, now)
    return found


def remove_leftover(leftover: Leftover, store: StoreLocation | None) -> None:
    """Delete one leftover (never one that may be in use)."""
    if leftover.in_use:
        raise ValueError(f"{leftover.where} may still be in use; not removed")
    if leftover.kind == "restore schema":
        schema = leftover.where.removeprefix("schema ")
        if not STAGING.match(schema) or store is None:
            raise ValueError(f"{leftover.where} is not a restore's staging schema; not removed")
        with _pg_connect(store) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return
    path = Path(leftover.where)
    if not PARTIAL.match(path.name):
        raise ValueError(f"{path} is not a partial file or folder; not removed")
    if path.is_dir():
        shutil.rmtree(path)
        return
    for suffix in ("-wal", "-shm", "-journal", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
