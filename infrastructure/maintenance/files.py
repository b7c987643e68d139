"""File modes: what holds the log, events, backups, logs or secrets is readable by its owner only."""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path

from infrastructure.maintenance.findings import Finding, finding, fixed, ok

FILE_MODE, FOLDER_MODE = 0o600, 0o700


def guarded_paths(*, store_file: Path | None, readmodel: Path, backup_root: Path | None, log_file: Path | None,
                  config_file: Path | None) -> list[tuple[str, Path]]:
    """(label, path) of everything whose mode matters; paths that do not exist are left out."""
    out: list[tuple[str, Path]] = []
    if store_file is not None:
        out += [("store", store_file), ("store", Path(f"{store_file}-wal")), ("store", Path(f"{store_file}-shm"))]
    snapshot = readmodel.with_name(readmodel.stem + ".snapshot" + readmodel.suffix)
    out += [("read model", readmodel), ("read model", Path(f"{readmodel}.wal")), ("snapshot", snapshot)]
    if backup_root is not None and backup_root.is_dir():
        out.append(("backups", backup_root))
        for path in sorted(backup_root.rglob("*")):
            out.append(("backups", path))
    if log_file is not None:
        out.append(("log", log_file))
        out += [("log", p) for p in sorted(log_file.parent.glob(log_file.name + ".*"))]
    if config_file is not None:
        out.append(("config", config_file))
    return [(label, path) for label, path in out if path.exists() and not path.is_symlink()]


def mode_findings(paths: Iterable[tuple[str, Path]], fix: bool) -> list[Finding]:
    """One finding per path others can read or write (0600 files, 0700 folders); ``fix`` chmods them."""
    out = []
    wrong = 0
    for label, path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = FOLDER_MODE if path.is_dir() else FILE_MODE
        if not mode & 0o077:
            continue
        wrong += 1
        if fix:
            path.chmod(want)
            out.append(fixed(f"mode.{label}", f"{path} was {oct(mode)}, now {oct(want)}"))
        else:
            out.append(finding(f"mode.{label}", f"{path} is {oct(mode)}: others can read it",
                               f"chmod {oct(want)[2:]} {path} (or `tradecore maintenance --fix`)"))
    if not wrong:
        out.append(ok("modes", "the store, read model, backups, logs and config are readable by their owner only"))
    return out
