"""The store's and read model's upkeep, backups past retention, leftovers, and the newest anchor's age."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from infrastructure.backup.archive import temporary_name
from infrastructure.backup.loading import RestoreRefused, replace_sqlite_file
from infrastructure.eventstore.chain import verify_chain
from infrastructure.maintenance.findings import Finding, finding, fixed, ok, skipped

ANCHOR_MAX_AGE = timedelta(days=8)  # a weekly anchor, with a day's slack


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def sqlite_upkeep(path: Path, open_store: Callable[[str], Any], stamp: str) -> list[Finding]:
    """integrity_check, ANALYZE, and VACUUM into a new file that is verified before it replaces the store.

    The new file must hold the same notification ids and chain (every link recomputed) as the store:
    VACUUM may renumber rowids, and the rowid is the notification id.
    """
    out: list[Finding] = []
    con = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        problems = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            return [finding("sqlite.integrity", f"{path}: {'; '.join(problems[:5])}",
                            "restore the newest verified backup (`tradecore backup restore latest --force`)")]
        out.append(ok("sqlite.integrity", f"{path}: integrity_check ok"))
        con.execute("ANALYZE")
        page = con.execute("PRAGMA page_size").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0] * page
    finally:
        con.close()
    before = path.stat().st_size
    if free == 0:
        out.append(ok("sqlite.vacuum", f"{path}: ANALYZE done; no free pages to regain ({_mib(before)})"))
        return out
    tmp = temporary_name(path)
    try:
        src = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            src.execute("BEGIN")  # the snapshot VACUUM INTO copies, and the position it copies up to
            mark = _position(src)
            src.execute("COMMIT")
            src.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            src.close()
        live = _chain(open_store, f"sqlite:///{path}")
        copy = _chain(open_store, f"sqlite:///{tmp}")
        if copy[1:] != live[1:] or not copy[0]:
            return out + [skipped("sqlite.vacuum", f"{path}: the log moved on (or VACUUM changed ids or links) while it was "
                                                   f"copied; store left as it was ({_mib(free)} could be regained)")]
        _delete_journal_mode(tmp)
        replace_sqlite_file(tmp, path, stamp, keep_old=False, unchanged=lambda con: _position(con) == mark)
    except RestoreRefused as exc:
        return out + [skipped("sqlite.vacuum", f"{exc} (VACUUM needs the store to itself; {_mib(free)} could be regained)")]
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    after = path.stat().st_size
    out.append(fixed("sqlite.vacuum", f"{path}: ANALYZE and VACUUM done, {_mib(before)} -> {_mib(after)} "
                                      f"({_mib(before - after)} regained); ids and chain unchanged"))
    return out


def _position(con: sqlite3.Connection) -> tuple:
    """(events, last id, last link) of the store: what must not change while it is vacuumed."""
    events = con.execute("SELECT count(*), max(rowid) FROM stored_events").fetchone()
    link = con.execute("SELECT link FROM stored_events_chain ORDER BY notification_id DESC LIMIT 1").fetchone()
    return (*events, link[0] if link else None)


def _chain(open_store: Callable[[str], Any], url: str) -> tuple:
    app = open_store(url)
    try:
        report = verify_chain(app.recorder)
    finally:
        app.close()
    return report.ok, report.checked, report.last_id, report.head


def _delete_journal_mode(path: Path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
    finally:
        con.close()


def duckdb_checkpoint(path: Path) -> Finding:
    """CHECKPOINT the read model (its WAL folded into the file), unless another process owns it."""
    import duckdb

    if not path.exists():
        return skipped("duckdb.checkpoint", f"{path} does not exist yet")
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return skipped("duckdb.checkpoint", f"{path} is owned by a running projector (it checkpoints itself)")
        raise
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return ok("duckdb.checkpoint", f"{path}: checkpointed ({_mib(path.stat().st_size)})")


def backup_findings(archives: Any, keep_counts: dict[str, int], store_location: Any, now: datetime, fix: bool) -> list[Finding]:
    """Archives past retention (never deleted here: `backup prune` does that) and leftovers (``fix`` removes them)."""
    from infrastructure.backup.leftovers import find_leftovers, remove_leftover
    from infrastructure.backup.retention import plan_prune
    from infrastructure.backup.storage import list_archives

    listed = list_archives(archives)
    plan = plan_prune({a.name: a.manifest for a in listed}, keep_counts)
    out: list[Finding] = []
    if plan.delete:
        out.append(finding("backups.retention", f"{len(plan.delete)} archive(s) in {archives.location} are past retention: "
                           f"{', '.join(plan.delete[:5])}{' ...' if len(plan.delete) > 5 else ''}",
                           "tradecore backup prune"))
    else:
        out.append(ok("backups.retention", f"{len([a for a in listed if a.manifest])} archive(s) in {archives.location}, "
                                            "none past retention"))
    for left in find_leftovers(archives, store_location, now):
        if left.in_use:
            out.append(skipped("backups.leftover", left.describe()))
        elif fix:
            remove_leftover(left, store_location)
            out.append(fixed("backups.leftover", f"removed {left.describe()}"))
        else:
            out.append(finding("backups.leftover", left.describe(), "tradecore backup prune (or maintenance --fix)"))
    return out


def anchor_age(source: str, key: bytes | None, now: datetime) -> Finding:
    """The newest anchor at ``source`` (signature checked when the key is set) and how old it is."""
    from infrastructure.backup.anchors import read_anchors
    from infrastructure.backup.storage import StorageError
    from infrastructure.eventstore.anchor import AnchorProblem, read_anchor

    try:
        found = read_anchors(source)
    except StorageError:
        if key is None:
            return skipped("anchors", "no AUDIT__ANCHOR_KEY and no anchor: a cut tail or a rewrite would go unseen")
        return finding("anchors", f"no anchor in {source}", "tradecore audit anchor --to ... (or back up with the key set)")
    newest: datetime | None = None
    for where, data in found:
        try:
            created = datetime.fromisoformat(read_anchor(data, where, key).created_at if key else json.loads(data)["created_at"])
        except (AnchorProblem, ValueError, KeyError, TypeError) as exc:
            return finding("anchors", f"{where}: {exc}", "tradecore audit verify --anchor " + source)
        newest = created if newest is None or created > newest else newest
    age = now - newest
    if age > ANCHOR_MAX_AGE:
        return finding("anchors", f"the newest anchor in {source} is {age.days} days old ({newest.isoformat()})",
                       "tradecore audit anchor --to ... (weekly at least)")
    return ok("anchors", f"newest anchor in {source} is {age.days} day(s) old ({len(found)} anchor(s))")
