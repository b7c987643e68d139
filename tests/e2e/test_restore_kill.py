"""`backup restore --force` killed (SIGKILL) at any moment leaves the old log or the new one, never an empty one.

Also: a restore that fails (an archive whose chain head was edited and resealed) leaves
the old log, says so truthfully, and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.backup.archive import Manifest, write_manifest
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import parse_store_url
from tests.conftest import PG_DSN, T0, fresh_pg_url, require_postgres

ROOT = Path(__file__).resolve().parents[2]
ARCHIVED = 40_000
OLD = 7


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "AUDIT__", "BACKUP__"))}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env())


def seed(url: str, product: str, count: int) -> None:
    app = open_store(url)
    for start in range(0, count, 10_000):
        app.record_candles(
            [Candle(product, "1h", T0 + timedelta(hours=i), D("100"), D("130"), D("90"), D(100 + i % 9), D("3"))
             for i in range(start, min(count, start + 10_000))],
            EventMeta(T0, actor="market"),
        )
    app.close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("restore-kill")
    url = f"sqlite:///{base}/source.db"
    seed(url, "BTC-USD", ARCHIVED)
    dest = base / "backups"
    made = subprocess.run([sys.executable, "-m", "api.cli", "backup", "create", "--store", url, "--dest", str(dest), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env())
    assert made.returncode == 0, made.stderr
    return dest, json.loads(made.stdout)["name"]


def state(url: str) -> tuple[int, bool]:
    """(events, chain intact) of the store at url, read without creating anything."""
    app = open_store(url)
    try:
        report = verify_chain(app.recorder)
        return report.checked, report.ok
    finally:
        app.close()


def staged(url: str) -> bool:
    """Whether the restore has begun building the new log beside the target."""
    location = parse_store_url(url)
    if location.backend == "sqlite":
        target = Path(location.sqlite_path)
        return any(target.parent.glob(f".{target.name}.partial-*"))
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        return conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tc_restore_%'").fetchone()[0] > 0


def restore(archive, url: str) -> subprocess.Popen:
    dest, name = archive
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "backup", "restore", name, "--dest", str(dest), "--to", url, "--force", "--no-rebuild"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )


def _target(backend: str, tmp_path: Path, n: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/target-{n}.db"
    require_postgres()
    return fresh_pg_url()


def _drop_leftover_staging(moved_of: str | None = None) -> None:
    """Drop staging schemas (and the moved-aside schemas of ``moved_of``'s target) this test made."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tc_restore_%'").fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        if moved_of:
            for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                          (moved_of.replace("_", "\\_") + "\\_moved\\_%",)).fetchall():
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_forced_restore_leaves_the_old_log_or_the_new_one(archive, tmp_path, backend):
    outcomes = []
    # Moments after the new log starts being built beside the target: while loading, while verifying, while swapping.
    for n, delay in enumerate((0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.2)):
        url = _target(backend, tmp_path, n)
        seed(url, "OLD-USD", OLD)
        if backend == "postgres":
            _drop_leftover_staging()
        proc = restore(archive, url)
        began = time.monotonic()
        while not staged(url) and proc.poll() is None and time.monotonic() - began < 60:
            time.sleep(0.02)
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        events, intact = state(url)
        assert intact, (delay, events)
        assert events in (OLD, ARCHIVED), f"killed {delay}s into the restore: the target holds {events} events"
        outcomes.append("finished" if finished else ("new" if events == ARCHIVED else "old"))
        if backend == "postgres" and n != 1:
            _drop_leftover_staging(moved_of=parse_store_url(url).schema)
        if n == 1:
            _leftovers_are_listed_and_pruned(archive, url, backend, tmp_path)
    assert "old" in outcomes, outcomes  # at least one kill landed before the swap
    if backend == "postgres":
        _drop_leftover_staging()


def _leftovers_are_listed_and_pruned(archive, url: str, backend: str, tmp_path: Path) -> None:
    """What a kill left (a hidden file, a staging schema) is listed by `backup list` and removed by `backup prune`."""
    dest, _ = archive
    if backend == "postgres":
        _wait_for_staging_locks_released()
    listed = json.loads(_cli("backup", "list", "--dest", str(dest), "--store", url, "--json").stdout)
    left = [r["name"] for r in listed if r.get("leftover", "").startswith("restore")]
    if backend == "sqlite":
        assert left and all(Path(name).parent == tmp_path and ".partial-" in name for name in left), listed
    else:
        assert left and all(name.startswith("schema tc_restore_") for name in left), listed
    pruned = json.loads(_cli("backup", "prune", "--dest", str(dest), "--store", url, "--json").stdout)
    assert set(left) <= set(pruned["leftovers_removed"])
    assert not staged(url)


def _wait_for_staging_locks_released(timeout: float = 30.0) -> None:
    """PostgreSQL ends a SIGKILLed client's backend (and releases its locks) only when it notices the closed socket,
    a moment after the kill; until then `backup prune` rightly treats the staging schema as in use."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'tc\\_restore\\_%'"
        ).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_resealed_archive_with_an_edited_head_fails_and_leaves_the_old_log(archive, tmp_path, backend):
    dest, name = archive
    forged = tmp_path / "forged"
    import shutil

    shutil.copytree(dest / name, forged / name)
    manifest = Manifest.from_bytes((forged / name / "manifest.json").read_bytes(), name)
    write_manifest(forged / name / "manifest.json", dataclasses.replace(manifest, chain_head="02" + "ab" * 32))
    url = _target(backend, tmp_path, 99)
    seed(url, "OLD-USD", OLD)
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "backup", "restore", name, "--dest", str(forged), "--to", url, "--force", "--no-rebuild"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env(),
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "restore failed, the target was not changed" in message and "chain head differs" in message
    assert state(url) == (OLD, True)
    if backend == "sqlite":
        target = Path(parse_store_url(url).sqlite_path)
        assert not list(target.parent.glob(f".{target.name}.partial-*")) and not list(target.parent.glob("*.moved-*"))
    else:
        assert not staged(url)
