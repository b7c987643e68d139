"""`tradecore maintenance [--json] [--fix]`: the weekly security and upkeep check (issue 17 item 13)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from infrastructure.backup.anchors import write_anchor
from infrastructure.eventstore.anchor import sign_anchor
from tests.conftest import T0
from tests.e2e.test_anchors_cli import add_candles

ROOT = Path(__file__).resolve().parents[2]
LLM_KEY = "sk-maint-" + "9" * 24
ANCHOR_KEY = "anchor-key-for-maintenance"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvci1hbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "AUDIT__", "BACKUP__", "SYSTEM__", "LLM__"))}
    env.update({"PYTHONPATH": str(ROOT), "LLM__API_KEY": LLM_KEY, "AUDIT__ANCHOR_KEY": ANCHOR_KEY,
                "SYSTEM__LOG_FILE": "var/logs/tradecore.log"})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def site(tmp_path) -> Path:
    """A bot's working folder after some weeks: store, read model, a backup, logs, a leftover, an old anchor."""
    url = "sqlite:///" + str(tmp_path / "var" / "events.db")
    add_candles(url, 0, 30)
    app = open_store(url)
    app.open_incident(uuid.uuid4(), EventMeta(T0, actor="operator:alice"), severity="P2", kind="access",
                      details=f"pasted by mistake: {JWT}")
    app.close()
    assert run(tmp_path, "project").returncode == 0
    assert run(tmp_path, "backup", "create").returncode == 0
    for fresh in (tmp_path / "var" / "backups").glob("*/anchor.json"):
        fresh.unlink()  # this backup predates the anchor key: only the old anchor below is left
    os.chmod(tmp_path / "var" / "readmodel.duckdb", 0o644)  # what DuckDB leaves with a usual umask
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "tradecore.log").write_text('{"message": "calling the model"}\n' f'{{"message": "retry with key {LLM_KEY}"}}\n')
    os.chmod(logs / "tradecore.log", 0o644)
    (tmp_path / "var" / "backups" / ".tradecore-x.partial-99999999-abcd").mkdir()  # a killed backup (no such pid)
    old = T0 - timedelta(days=30)
    write_anchor(sign_anchor(31, "02" + "00" * 32, old, url, ANCHOR_KEY.encode()), str(tmp_path / "var" / "backups" / "anchor-old.json"), old, 365)
    return tmp_path


def test_findings_are_named_without_showing_a_secret_and_exit_1(site):
    result = run(site, "maintenance", "--json")
    assert result.returncode == 1, result.stderr
    assert LLM_KEY not in result.stdout + result.stderr and JWT not in result.stdout + result.stderr
    doc = json.loads(result.stdout)
    by_check = {}
    for f in doc["findings"]:
        by_check.setdefault(f["check"], []).append(f)
    assert doc["ok"] is False
    assert any("readmodel.duckdb is 0o644" in f["detail"] for f in by_check["mode.read model"])
    assert "the value of llm.api_key in var/logs/tradecore.log:2" in by_check["secrets.logs"][0]["detail"]
    assert "a JWT in notification 31" in by_check["secrets.event payloads"][0]["detail"]
    assert by_check["backups.leftover"][0]["status"] == "finding"
    assert "days old" in by_check["anchors"][0]["detail"] and by_check["anchors"][0]["status"] == "finding"
    assert by_check["sqlite.integrity"][0]["status"] == "ok"


def test_fix_repairs_only_modes_and_leftovers(site):
    result = run(site, "maintenance", "--fix", "--json")
    assert result.returncode == 1  # secrets and the old anchor are still findings: --fix does not touch them
    doc = json.loads(result.stdout)
    statuses = {(f["check"], f["status"]) for f in doc["findings"]}
    assert ("mode.read model", "fixed") in statuses and ("backups.leftover", "fixed") in statuses
    assert ("secrets.logs", "finding") in statuses and ("anchors", "finding") in statuses
    assert mode(site / "var" / "readmodel.duckdb") == 0o600 and mode(site / "var" / "logs" / "tradecore.log") == 0o600
    assert not list((site / "var" / "backups").glob(".*.partial-*"))
    assert LLM_KEY in (site / "var" / "logs" / "tradecore.log").read_text()  # the log is left for the operator


def test_vacuum_regains_space_keeps_ids_and_chain_and_waits_for_a_store_in_use(site):
    store = site / "var" / "events.db"
    before = run(site, "audit", "verify", "--json")
    con = sqlite3.connect(store)  # free pages, without touching the log: a scratch table dropped
    con.execute("CREATE TABLE scratch AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
                "SELECT i, randomblob(200) AS b FROM n")
    con.execute("DROP TABLE scratch")
    con.commit()
    con.close()
    holder = sqlite3.connect(store)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("SELECT count(*) FROM stored_events").fetchone()
    busy = json.loads(run(site, "maintenance", "--json").stdout)
    holder.close()
    vacuum = [f for f in busy["findings"] if f["check"] == "sqlite.vacuum"][0]
    assert vacuum["status"] == "skipped" and "in use" in vacuum["detail"]
    size = store.stat().st_size
    done = json.loads(run(site, "maintenance", "--json").stdout)
    vacuum = [f for f in done["findings"] if f["check"] == "sqlite.vacuum"][0]
    assert vacuum["status"] == "fixed" and "regained" in vacuum["detail"], vacuum
    assert store.stat().st_size < size
    after = run(site, "audit", "verify", "--json")
    assert after.returncode == 0 and json.loads(after.stdout)["head"] == json.loads(before.stdout)["head"]
