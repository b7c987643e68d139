"""`tradecore config baseline | set | unset | drift` through the real CLI.

Every run gets an explicit environment (no host settings leak in) holding a secret, and every
output is kept so the tests can check that the secret never appears anywhere.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-secret-xyz"


class Cli:
    """Runs `python -m api.cli.main ...` against one SQLite store and remembers every output."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path}/events.db"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "USER": "alice",
            "LLM__API_KEY": SECRET,
        }
        self.outputs: list[str] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None, store: bool = True) -> subprocess.CompletedProcess:
        full_env = {**self.env, **(env or {})}
        argv = [sys.executable, "-m", "api.cli", *args, *(["--store", self.url] if store else [])]
        result = subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)
        self.outputs += [result.stdout, result.stderr]
        return result

    def config_events(self, type_: str = "ConfigChanged") -> list[dict]:
        if not Path(self.url.removeprefix("sqlite:///")).exists():
            return []  # read-only commands never create a store: nothing was written
        result = self("events", "--type", type_, "--json")
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def stored(self) -> bytes:
        """Every value in every table of the store as written (the events, their chain, all else), read
        in-process after the commands ended: no rendering stands between the check and the bytes."""
        path = Path(self.url.removeprefix("sqlite:///"))
        if not path.exists():
            return b""  # read-only commands never create a store: nothing was written
        con = sqlite3.connect(path)
        try:
            tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert "stored_events" in tables, tables
            return b"\n".join(value if isinstance(value, bytes) else str(value).encode()
                               for table in tables for row in con.execute(f'SELECT * FROM "{table}"') for value in row)
        finally:
            con.close()


@pytest.fixture
def cli(tmp_path):
    runner = Cli(tmp_path)
    yield runner
    # whatever a test did, the secret never reached an output or the log
    assert SECRET.encode() not in runner.stored()
    for text in runner.outputs:
        assert SECRET not in text


def test_drift_lists_recorded_change_with_actor_and_time(cli):
    assert cli("config", "baseline", "--reason", "approved for go-live").returncode == 0
    changed = cli("config", "set", "risk.max_daily_loss_pct", "4", "--reason", "wider limit for the test")
    assert changed.returncode == 0, changed.stderr
    assert "risk.max_daily_loss_pct: 3 -> 4 recorded by operator:alice" in changed.stdout

    (event,) = cli.config_events()
    assert event["actor"] == "operator:alice"
    assert event["payload"]["path"] == "risk.max_daily_loss_pct"
    assert (event["payload"]["old_value"], event["payload"]["new_value"]) == ("3", "4")
    assert event["payload"]["reason"] == "wider limit for the test"
    assert len(event["payload"]["config_hash"]) == 64

    drift = cli("config", "drift")
    assert drift.returncode == 3, drift.stderr
    (line,) = [ln for ln in drift.stdout.splitlines() if "risk.max_daily_loss_pct" in ln]
    assert "baseline=3" in line and "current=4" in line and "by=operator:alice" in line
    assert f"at={event['occurred_at']}" in line and "wider limit for the test" in line
    assert "drifted from the baseline" in drift.stdout


def test_drift_json_shape(cli):
    baseline = cli("config", "baseline", "--reason", "ok")
    cli("config", "set", "llm.max_tokens", "1200", "--reason", "longer answers")
    report = cli("config", "drift", "--json")
    assert report.returncode == 3
    doc = json.loads(report.stdout)
    assert set(doc) == {"drifted", "baseline", "current_hash", "changes"}
    assert doc["drifted"] is True
    assert set(doc["baseline"]) == {"config_hash", "set_at", "actor", "reason"}
    assert doc["baseline"]["actor"] == "operator:alice" and doc["baseline"]["reason"] == "ok"
    assert doc["baseline"]["config_hash"] in baseline.stdout
    assert doc["current_hash"] != doc["baseline"]["config_hash"]
    (change,) = doc["changes"]
    assert set(change) == {"path", "baseline", "current", "actor", "occurred_at", "reason", "secret"}
    assert change["path"] == "llm.max_tokens" and change["baseline"] == "800" and change["current"] == "1200"
    assert change["actor"] == "operator:alice" and change["reason"] == "longer answers" and change["secret"] is False
    assert datetime.fromisoformat(change["occurred_at"]).tzinfo is not None


def test_no_drift_right_after_baseline_and_no_baseline_is_exit_2(cli):
    no_store = cli("config", "drift")
    assert no_store.returncode == 2 and "no event store at" in no_store.stderr  # a read-only command creates none
    from api.bootstrap import open_store

    open_store(cli.url).close()
    missing = cli("config", "drift")
    assert missing.returncode == 2 and "no baseline yet" in missing.stderr
    assert cli("config", "baseline").returncode == 0
    clean = cli("config", "drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout
    doc = json.loads(cli("config", "drift", "--json").stdout)
    assert doc["drifted"] is False and doc["changes"] == []
    assert doc["current_hash"] == doc["baseline"]["config_hash"]


def test_invalid_value_is_refused_and_nothing_written(cli):
    cli("config", "baseline")
    refused = cli("config", "set", "risk.max_daily_loss_pct", "-5", "--reason", "typo")
    assert refused.returncode == 2
    assert "risk.max_daily_loss_pct" in refused.stderr and "'-5'" in refused.stderr
    assert "greater than 0" in refused.stderr and "nothing recorded" in refused.stderr
    markup = cli("config", "set", "trading.product", "[bold]btc", "--reason", "odd")
    assert markup.returncode == 2 and "trading.product = '[bold]btc'" in markup.stderr
    cross = cli("config", "set", "trading.leverage", "5", "--reason", "more")
    assert cross.returncode == 2 and "exceeds risk.max_leverage" in cross.stderr
    assert cli.config_events() == []
    assert cli("config", "drift").returncode == 0


def test_unknown_path_is_refused_naming_it(cli):
    refused = cli("config", "set", "risk.max_daily_loss", "5", "--reason", "typo")
    assert refused.returncode == 2
    assert "unknown setting path 'risk.max_daily_loss'" in refused.stderr
    assert "risk.max_daily_loss_pct" in refused.stderr  # the suggestion
    section = cli("config", "set", "riks.max_daily_loss_pct", "5", "--reason", "typo")
    assert section.returncode == 2 and "unknown setting path" in section.stderr
    assert cli("config", "set", "eventstore.url", "sqlite:///x.db", "--reason", "move").returncode == 2
    assert cli.config_events() == []


def test_reason_is_required(cli):
    missing = cli("config", "set", "llm.max_tokens", "900")
    assert missing.returncode == 2 and "--reason" in missing.stderr
    blank = cli("config", "set", "llm.max_tokens", "900", "--reason", "  ")
    assert blank.returncode == 2
    assert cli.config_events() == []


def test_value_already_in_effect_records_nothing(cli):
    same = cli("config", "set", "risk.max_daily_loss_pct", "3.0", "--reason", "no-op")
    assert same.returncode == 0 and "already 3: nothing recorded" in same.stdout
    assert cli("config", "set", "risk.max_daily_loss_pct", "4", "--reason", "r").returncode == 0
    again = cli("config", "set", "risk.max_daily_loss_pct", "4.00", "--reason", "r")
    assert "nothing recorded" in again.stdout
    assert len(cli.config_events()) == 1


def test_environment_change_after_baseline_is_drift_by_environment(cli):
    cli("config", "baseline")
    drift = cli("config", "drift", "--json", env={"RISK__MAX_POSITION_SIZE_PCT": "20"})
    assert drift.returncode == 3
    (change,) = json.loads(drift.stdout)["changes"]
    assert change["path"] == "risk.max_position_size_pct"
    assert (change["baseline"], change["current"]) == ("25", "20")
    assert change["actor"] == "environment" and change["occurred_at"] is None
    text = cli("config", "drift", env={"RISK__MAX_POSITION_SIZE_PCT": "20"})
    assert "by=environment" in text.stdout and "at=-" in text.stdout


def test_toml_change_after_baseline_is_drift_by_environment(cli, tmp_path):
    toml = tmp_path / "tradecore.toml"
    toml.write_text("[risk]\nmax_concurrent_positions = 2\n")
    cli("config", "baseline", "--config", str(toml))
    assert cli("config", "drift", "--config", str(toml)).returncode == 0
    toml.write_text("[risk]\nmax_concurrent_positions = 3\n")
    doc = json.loads(cli("config", "drift", "--json", "--config", str(toml)).stdout)
    (change,) = doc["changes"]
    assert (change["path"], change["baseline"], change["current"], change["actor"]) == (
        "risk.max_concurrent_positions", "2", "3", "environment")


def test_recorded_change_wins_over_environment_until_unset(cli):
    cli("config", "baseline")
    cli("config", "set", "risk.max_daily_loss_pct", "4", "--reason", "log wins")
    env = {"RISK__MAX_DAILY_LOSS_PCT": "5"}
    (change,) = json.loads(cli("config", "drift", "--json", env=env).stdout)["changes"]
    assert change["current"] == "4" and change["actor"] == "operator:alice"

    unset = cli("config", "unset", "risk.max_daily_loss_pct", "--reason", "back to the environment", env=env)
    assert unset.returncode == 0 and "now 5" in unset.stdout
    (change,) = json.loads(cli("config", "drift", "--json", env=env).stdout)["changes"]
    assert change["current"] == "5" and change["actor"] == "environment"
    assert cli("config", "drift").returncode == 0  # without the env var: back to the baseline's 3
    nothing = cli("config", "unset", "risk.max_daily_loss_pct", "--reason", "twice")
    assert "nothing to unset" in nothing.stdout
    events = cli.config_events()
    assert [e["payload"]["new_value"] for e in events] == ["4", None]


def test_secrets_never_appear_and_are_never_set_through_the_log(cli):
    baseline = cli("config", "baseline")
    assert baseline.returncode == 0
    refused = cli("config", "set", "llm.api_key", "sk-another-one", "--reason", "rotate")
    assert refused.returncode == 2 and "set secrets through the environment, never the log" in refused.stderr
    assert "sk-another-one" not in refused.stdout + refused.stderr
    tokens = cli("config", "set", "system.api_tokens", "[]", "--reason", "x")
    assert tokens.returncode == 2
    webhook = cli("config", "set", "system.alert_webhook_url", "https://hooks.example/x", "--reason", "x")
    assert webhook.returncode == 2
    typo = cli("config", "set", "llm.api_kye", SECRET, "--reason", "typo in a secret's name")  # not echoed back
    assert typo.returncode == 2 and "unknown setting path 'llm.api_kye' (value **** not recorded)" in typo.stderr
    assert cli.config_events() == []

    (base_event,) = cli.config_events("ConfigBaselineSet")
    assert base_event["payload"]["values"]["llm.api_key"].startswith("set:")  # set + fingerprint only

    rotated_env = {"LLM__API_KEY": "sk-rotated-key"}
    drift = cli("config", "drift", "--json", env=rotated_env)
    assert drift.returncode == 3
    (change,) = json.loads(drift.stdout)["changes"]
    assert change == {
        "path": "llm.api_key", "baseline": "set", "current": "set (rotated)",
        "actor": "environment", "occurred_at": None, "reason": None, "secret": True,
    }
    fingerprint = base_event["payload"]["values"]["llm.api_key"].removeprefix("set:")
    assert fingerprint not in drift.stdout
    removed = cli("config", "drift", env={"LLM__API_KEY": ""})
    assert "baseline=set  current=unset" in removed.stdout
    assert "sk-rotated-key" not in "".join(cli.outputs)
