"""The weekly security and upkeep check (``tradecore maintenance``): what it looks at, in what order.

File modes of what holds the log, events or secrets; secrets where they must not be (event
payloads, logs, backups, exports given to scan); the store's upkeep (SQLite: integrity, ANALYZE,
VACUUM into a verified copy swapped in; PostgreSQL keeps itself); the read model's checkpoint;
backups past retention and leftovers; the newest anchor's age. Each look is an adapter behind the
``UpkeepKit`` port (infrastructure/maintenance, handed in by api/bootstrap.py); each answers with
``Finding`` lines. ``--fix`` repairs only file modes and leftovers; every other finding says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

Chunk = tuple[str, bytes]  # (where, bytes): "notification 12", "var/logs/tradecore.log:3"


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    ``status``: ``ok``; ``finding`` (something to act on: exit 1); ``fixed`` (``--fix`` repaired it);
    ``skipped`` (could not be checked here, and why).
    """

    check: str
    status: str
    detail: str
    action: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def finding(check: str, detail: str, action: str) -> Finding:
    return Finding(check, "finding", detail, action)


def fixed(check: str, detail: str) -> Finding:
    return Finding(check, "fixed", detail)


def skipped(check: str, detail: str) -> Finding:
    return Finding(check, "skipped", detail)


class UpkeepKit(Protocol):
    """The port: each look at the outside world the weekly check needs."""

    def guarded_paths(self, *, store_file: Path | None, readmodel: Path, backup_root: Path | None,
                      log_file: Path | None, config_file: Path | None) -> list[tuple[str, Path]]:
        """(label, path) of everything whose mode matters that exists."""

    def mode_findings(self, paths: Iterable[tuple[str, Path]], fix: bool) -> list[Finding]:
        """One finding per path others can read or write; ``fix`` chmods them."""

    def configured_secrets(self, settings: Any) -> list[tuple[str, bytes]]:
        """(name, value) of every secret the settings hold."""

    def payloads(self, store: Any) -> Iterator[Chunk]:
        """Every event's stored JSON."""

    def log_chunks(self, log_file: Path) -> Iterator[Chunk]:
        """The log file and its rotations, line by line."""

    def backup_chunks(self, root: Path) -> Iterator[Chunk]:
        """The events files of the complete archives in a local destination."""

    def file_chunks(self, path: Path) -> Iterator[Chunk]:
        """A text or Parquet file's lines or values."""

    def scan(self, sources: Iterable[tuple[str, Iterator[Chunk]]], secrets: list[tuple[str, bytes]]) -> list[Finding]:
        """Configured secrets and key- or token-shaped text in each source."""

    def sqlite_upkeep(self, path: Path, open_store: Callable[[str], Any], stamp: str) -> list[Finding]: ...

    def duckdb_checkpoint(self, path: Path) -> Finding: ...

    def backup_findings(self, archives: Any, keep_counts: dict[str, int], store_location: Any, now: datetime,
                        fix: bool) -> list[Finding]:
        """Archives past retention, leftovers of killed backups and restores (``fix`` removes those)."""

    def anchor_age(self, source: str, key: bytes | None, now: datetime) -> Finding: ...


def weekly_check(kit: UpkeepKit, settings: Any, *, reading: Callable[[], AbstractContextManager[Any]],
                 open_store: Callable[[str], Any], archives: Any, store_location: Any, log_file: Path,
                 config_file: Path | None, scan_files: Iterable[Path] = (), now: datetime,
                 fix: bool = False) -> list[Finding]:
    """Every finding, in the order the report lists them.

    ``reading()`` opens the store read-only for the payload scan (closed before the store's upkeep, which
    may swap the SQLite file); ``archives`` is the backup destination (its ``root`` when local).
    """
    location = store_location
    store_file = Path(location.sqlite_path) if location.backend == "sqlite" and not location.is_memory else None
    readmodel = Path(settings.readmodel.path)
    backup_root = getattr(archives, "root", None)
    found = kit.mode_findings(kit.guarded_paths(store_file=store_file, readmodel=readmodel, backup_root=backup_root,
                                                log_file=log_file, config_file=config_file), fix)
    with reading() as trading:
        sources = [("event payloads", kit.payloads(trading)), ("logs", kit.log_chunks(log_file))]
        if backup_root is not None:
            sources.append(("backups", kit.backup_chunks(backup_root)))
        scan_files = list(scan_files)
        if scan_files:
            sources.append(("exports", (chunk for path in scan_files for chunk in kit.file_chunks(path))))
        found += kit.scan(sources, kit.configured_secrets(settings))
    if store_file is not None:
        found += kit.sqlite_upkeep(store_file, open_store, now.strftime("%Y%m%dT%H%M%SZ"))
    elif location.backend == "postgresql":
        found.append(skipped("store.upkeep", f"{location.redacted()}: PostgreSQL keeps itself (autovacuum); "
                                             "its backups and replication are the database's"))
    found.append(kit.duckdb_checkpoint(readmodel))
    b = settings.backup
    found += kit.backup_findings(archives, {"daily": b.keep_daily, "weekly": b.keep_weekly, "monthly": b.keep_monthly},
                                 location, now, fix)
    key = settings.audit.anchor_key
    found.append(kit.anchor_age(b.dest, key.get_secret_value().encode() if key else None, now))
    return found
