"""`tradecore backup ...` end to end: create, list, verify (and every kind of damage), restore, prune."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.backup.archive import Manifest, sha256_file
from projections.engine import runner
from tests.conftest import T0

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-DO-NOT-LEAK-4242"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "LLM__API_KEY": SECRET, **(env or {})}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=full_env)


def seed(url: str, product: str, count: int, halt: bool = True) -> None:
    app = open_store(url)
    app.record_candles(
        [Candle(product, "1h", T0 + timedelta(hours=i), D("100"), D("130"), D("90"), D(100 + i % 9), D("3")) for i in range(count)],
        EventMeta(T0, actor="market"),
    )
    control = EventMeta(T0, actor="operator:test")
    app.operator_halt("drill", "P2", control) if halt else app.resume_trading("drill over", control)
    app.close()


@pytest.fixture(scope="module")
def made_once(tmp_path_factory):
    """A store, a full backup and an incremental one made through the CLI, once for the module."""
    base = tmp_path_factory.mktemp("backup_cli")
    url = f"sqlite:///{base}/events.db"
    dest = base / "backups"
    seed(url, "BTC-USD", 300)
    full = cli("backup", "create", "--kind", "weekly", "--store", url, "--dest", str(dest), "--json")
    assert full.returncode == 0, full.stderr
    seed(url, "ETH-USD", 100, halt=False)
    incr = cli("backup", "create", "--since-last", "--format", "jsonl", "--store", url, "--dest", str(dest), "--json")
    assert incr.returncode == 0, incr.stderr
    return base, json.loads(full.stdout), json.loads(incr.stdout)


@pytest.fixture
def archives(made_once, tmp_path):
    """A copy of that store and its two backups in the test's own folder: the test damages them as it likes."""
    base, full, incr = made_once
    for path in base.iterdir():
        if path.is_dir():
            shutil.copytree(path, tmp_path / path.name)
        else:
            shutil.copy2(path, tmp_path / path.name)
    return f"sqlite:///{tmp_path}/events.db", tmp_path / "backups", full, incr


def test_create_list_verify_and_the_manifest_carries_no_secret(archives):
    url, dest, full, incr = archives
    assert full["first_id"] == 1 and full["parent"] is None
    assert incr["parent"] == full["name"] and incr["first_id"] == full["last_id"] + 1 and incr["events"] == 101
    listed = cli("backup", "list", "--dest", str(dest), "--json")
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == [full["name"], incr["name"]]
    assert rows[0]["kind"] == "weekly" and rows[1]["kind"] == "daily" and all(r["size"] > 0 for r in rows)
    ok = cli("backup", "verify", incr["name"], "--dest", str(dest))
    assert ok.returncode == 0, ok.stderr
    assert "archive ok" in ok.stdout and "1 parent" in ok.stdout
    manifest = json.loads((dest / full["name"] / "manifest.json").read_text())
    assert manifest["settings"]["llm"]["api_key"]["set"] is True
    assert manifest["code_version"] and manifest["chain_head"] == full["chain_head"]
    for folder in dest.iterdir():
        for file in folder.iterdir():
            assert SECRET.encode() not in file.read_bytes()


def _verify_fails(dest: Path, name: str, *expected: str) -> None:
    result = cli("backup", "verify", name, "--dest", str(dest))
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    for text in expected:
        assert text in message, message


def test_a_truncated_archive_fails_verify_naming_the_file(archives):
    _, dest, full, _ = archives
    events = dest / full["name"] / "events.parquet"
    events.write_bytes(events.read_bytes()[: events.stat().st_size // 2])
    _verify_fails(dest, full["name"], "events.parquet", "truncated")


def test_a_bit_flipped_archive_fails_verify_naming_the_checksum(archives):
    _, dest, _, incr = archives
    events = dest / incr["name"] / "events.jsonl.gz"
    data = bytearray(events.read_bytes())
    data[len(data) // 2] ^= 0x01
    events.write_bytes(bytes(data))
    _verify_fails(dest, incr["name"], "events.jsonl.gz", "sha256")


def test_a_reordered_archive_fails_verify_even_with_its_checksums_redone(archives):
    _, dest, full, _ = archives
    folder = dest / full["name"]
    table = pq.read_table(folder / "events.parquet")
    order = list(range(table.num_rows))
    order[10], order[11] = order[11], order[10]
    pq.write_table(table.take(order), folder / "events.parquet")
    manifest = Manifest.from_bytes((folder / "manifest.json").read_bytes(), "m")  # a careful forger re-seals it
    manifest.files[0].sha256 = sha256_file(folder / "events.parquet")
    manifest.files[0].bytes = (folder / "events.parquet").stat().st_size
    (folder / "manifest.json").write_bytes(manifest.to_bytes())
    _verify_fails(dest, full["name"], "notification 12 does not match its chain link", "reordered")


def test_an_incremental_whose_parent_is_missing_fails_verify_naming_the_parent(archives):
    _, dest, full, incr = archives
    shutil.rmtree(dest / full["name"])
    _verify_fails(dest, incr["name"], f"parent archive {full['name']} is missing")


def test_an_edited_manifest_fails_verify(archives):
    _, dest, full, _ = archives
    path = dest / full["name"] / "manifest.json"
    path.write_text(path.read_text().replace(f'"event_count": {full["events"]}', f'"event_count": {full["events"] - 1}'))
    _verify_fails(dest, full["name"], "manifest's own checksum")


def test_restore_through_the_cli_rebuilds_the_read_model_with_the_original_checksums(archives, tmp_path):
    url, dest, _, incr = archives
    source = open_store(url)
    con = runner.open_readmodel(":memory:")
    runner.rebuild(source, con, runner.ALL_PROJECTIONS, 5000)
    expected = runner.checksums(con)
    con.close()
    source.close()
    target = f"sqlite:///{tmp_path}/restored/events.db"
    readmodel = tmp_path / "restored" / "readmodel.duckdb"
    result = cli("backup", "restore", "latest", "--dest", str(dest), "--to", target, "--readmodel", str(readmodel), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["archives"][-1] == incr["name"] and out["events"] == incr["last_id"] and out["replayed"] == incr["last_id"]
    assert {name: t["sha256"] for name, t in out["tables"].items()} == expected
    assert out["tables"]["candles"]["rows"] == 400 and readmodel.exists()
    audit = cli("audit", "verify", "--store", target)
    assert audit.returncode == 0 and "log intact" in audit.stdout

    again = cli("backup", "restore", "latest", "--dest", str(dest), "--to", target, "--no-rebuild")
    assert again.returncode == 2 and "already holds" in again.stderr and "--force" in again.stderr
    forced = cli("backup", "restore", incr["name"], "--dest", str(dest), "--to", target, "--until", "150", "--force", "--no-rebuild")
    assert forced.returncode == 0, forced.stderr
    assert "moved aside" in forced.stdout and "restored 150 events" in forced.stdout
    assert len(list((tmp_path / "restored").glob("events.db.moved-*"))) >= 1


def test_prune_dry_run_then_prune(archives):
    _, dest, full, incr = archives
    dry = cli("backup", "prune", "--dry-run", "--keep-daily", "0", "--keep-weekly", "0", "--dest", str(dest), "--json")
    plan = json.loads(dry.stdout)
    assert plan["delete"] == [] and set(plan["keep"]) == {full["name"], incr["name"]}  # only copies are kept
    assert "only copy" in plan["keep"][incr["name"]]


def test_bad_input_exits_2_naming_it(tmp_path):
    result = cli("backup", "create", "--kind", "hourly", "--dest", str(tmp_path))
    assert result.returncode == 2 and "--kind" in result.stderr
    result = cli("backup", "verify", "nope", "--dest", str(tmp_path))
    assert result.returncode == 1 and "not found" in result.stderr
    result = cli("backup", "restore", "x", "--dest", str(tmp_path), "--to", "mysql://x")
    assert result.returncode == 2 and "unsupported scheme" in result.stderr


def test_a_backup_killed_midway_leaves_nothing_that_looks_complete(tmp_path):
    import signal
    import time

    url = f"sqlite:///{tmp_path}/events.db"
    app = open_store(url)
    start = T0
    for part in range(4):  # ~100,000 events: long enough to be caught mid-write
        app.record_candles(
            [Candle(f"K{part}-USD", "1h", start + timedelta(hours=i), D("100"), D("130"), D("90"), D("101"), D("3"))
             for i in range(25_000)], EventMeta(T0, actor="market"))
    app.close()
    dest = tmp_path / "backups"
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "backup", "create", "--store", url, "--dest", str(dest)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if dest.is_dir() and any(p.name.startswith(".") for p in dest.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the backup finished before it could be killed"
    leftovers = list(dest.iterdir())
    assert leftovers and all(p.name.startswith(".") and ".partial-" in p.name for p in leftovers)
    listed = cli("backup", "list", "--dest", str(dest), "--store", url, "--json")
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == [str(p) for p in sorted(leftovers)]  # no archive, but the leftover is shown
    assert all(r["leftover"] == "backup" and not r["complete"] and not r["in_use"] and r["size"] >= 0 for r in rows)
    assert "LEFTOVER backup leftover" in cli("backup", "list", "--dest", str(dest), "--store", url).stdout
    assert cli("backup", "verify", "latest", "--dest", str(dest)).returncode == 2  # nothing complete to verify
    pruned = cli("backup", "prune", "--dest", str(dest), "--store", url, "--json")
    assert pruned.returncode == 0 and json.loads(pruned.stdout)["leftovers_removed"] == [str(p) for p in sorted(leftovers)]
    assert list(dest.iterdir()) == []
