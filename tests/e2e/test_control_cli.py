"""`tradecore halt | resume | cancel-all | incident` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "USER": "alice"}
    argv = [sys.executable, "-m", "api.cli", *args, "--store", f"sqlite:///{tmp_path}/events.db"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_halt_resume_and_incidents_are_events_with_the_operator_as_actor(tmp_path):
    assert cli(tmp_path, "halt", "--reason", "venue flapping", "--severity", "P1", "--actor", "bob").returncode == 0
    again = cli(tmp_path, "halt", "--reason", "again", "--severity", "P2")
    assert again.returncode == 1 and "already halted" in again.stderr
    bad = cli(tmp_path, "halt", "--reason", "x", "--severity", "P7")
    assert bad.returncode == 2 and "--severity" in bad.stderr
    assert cli(tmp_path, "resume", "--reason", "checked").returncode == 0
    opened = cli(tmp_path, "incident", "open", "--severity", "P0", "--kind", "outage", "--details", "503s", "--json")
    assert opened.returncode == 0, opened.stderr
    incident_id = json.loads(opened.stdout)["incident_id"]
    assert cli(tmp_path, "incident", "resolve", incident_id, "--note", "venue back").returncode == 0
    not_an_id = cli(tmp_path, "incident", "resolve", "nope", "--note", "x")
    assert not_an_id.returncode == 2 and "not an incident id" in not_an_id.stderr
    log = cli(tmp_path, "events", "--json", "--limit", "100")
    rows = [json.loads(line) for line in log.stdout.splitlines()]
    assert [(r["type"], r["actor"]) for r in rows] == [
        ("ControlStarted", "bob"), ("TradingHalted", "bob"), ("TradingResumed", "operator:alice"),
        ("IncidentOpened", "operator:alice"), ("TradingHalted", "operator:alice"),
        ("CancelAllRequested", "operator:alice"), ("IncidentResolved", "operator:alice"),
    ]
    assert rows[4]["payload"]["severity"] == "P0"
