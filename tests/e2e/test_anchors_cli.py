"""Signed anchors of the chain head reveal a cut tail, a rollback and a rewritten history (issue 17 item 3).

Attacks are done as an intruder with database access would: deleting the newest
events with their links, or rewriting an event and rebuilding the whole chain.
Plain `audit verify` cannot see either; `audit verify --anchor` must.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.eventstore.chain import GENESIS, chain_link
from tests.conftest import T0
from tests.integration.test_tamper_evidence import Tamper

ROOT = Path(__file__).resolve().parents[2]
KEY = "anchor-key-7f3a9c1e5b2d4f60"


def cli(*args: str, key: str | None = KEY, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "AUDIT__", "BACKUP__"))}
    if key is not None:
        env["AUDIT__ANCHOR_KEY"] = key
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def add_candles(url: str, start: int, count: int) -> None:
    app = open_store(url)
    app.record_candles(
        [Candle("BTC-USD", "1h", T0 + timedelta(hours=i), D("100"), D("1000"), D("90"), D(str(100 + i)), D("1"))
         for i in range(start, start + count)],
        EventMeta(T0, actor="test"),
    )
    app.close()


def one_line(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_an_anchor_is_signed_never_holds_the_key_and_a_growing_log_extends_it(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 10)
    written = cli("audit", "anchor", "--output", str(tmp_path / "a1.json"), "--store", url, "--json")
    assert written.returncode == 0, written.stderr
    doc = json.loads(written.stdout)
    assert doc["notification_id"] == 10 and doc["chain_head"].startswith("02")
    text = (tmp_path / "a1.json").read_text()
    assert KEY not in text and KEY not in written.stdout + written.stderr
    assert json.loads(text)["signature"]
    add_candles(url, 10, 5)
    checked = cli("audit", "verify", "--anchor", str(tmp_path / "a1.json"), "--store", url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "extends all 1 anchor(s)" in one_line(checked)
    again = cli("audit", "anchor", "--output", str(tmp_path / "a1.json"), "--store", url)
    assert again.returncode == 2 and "already exists" in one_line(again)  # anchors are never replaced


def test_a_cut_tail_is_invisible_to_the_chain_but_not_to_the_anchor(store_url, tmp_path):
    add_candles(store_url, 0, 20)
    assert cli("audit", "anchor", "--output", str(tmp_path / "head.json"), "--store", store_url).returncode == 0
    tamper = Tamper(store_url)
    chain = "stored_events_chain" if tamper.location.backend == "sqlite" else f'"{tamper.location.schema}".tradecore_events_chain'
    tamper.run(("DELETE FROM {t} WHERE {id} > %s", (10,)), (f"DELETE FROM {chain} WHERE notification_id > %s", (10,)))
    plain = cli("audit", "verify", "--store", store_url)
    assert plain.returncode == 0  # the chain alone cannot see a cut tail
    anchored = cli("audit", "verify", "--anchor", str(tmp_path / "head.json"), "--store", store_url)
    assert anchored.returncode == 1
    message = one_line(anchored)
    assert f"the log no longer reaches anchor {tmp_path / 'head.json'} (notification 20" in message
    assert "ends at notification 10, 10 event(s) short" in message


def _rebuild_chain_after_editing(path: Path, nid: int) -> None:
    """Edit one event and recompute every link after it: what an intruder with full access does."""
    with sqlite3.connect(path) as conn:
        state = conn.execute("SELECT state FROM stored_events WHERE rowid = ?", (nid,)).fetchone()[0]
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state.replace(b'"volume":"1"', b'"volume":"9"'), nid))
        previous = GENESIS
        for row in conn.execute("SELECT rowid, originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid").fetchall():
            previous = chain_link(previous, *row)
            conn.execute("UPDATE stored_events_chain SET link = ? WHERE notification_id = ?", (previous, row[0]))


def test_a_rewritten_history_with_a_rebuilt_chain_contradicts_the_anchor(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 12)
    assert cli("audit", "anchor", "--output", str(tmp_path / "a.json"), "--store", url).returncode == 0
    _rebuild_chain_after_editing(tmp_path / "events.db", 5)
    assert cli("audit", "verify", "--store", url).returncode == 0  # internally consistent again
    result = cli("audit", "verify", "--anchor", str(tmp_path / "a.json"), "--store", url, "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "the log contradicts anchor" in doc["anchors"]["problems"][0]
    assert "rewritten" in doc["anchors"]["problems"][0]


def test_an_edited_anchor_or_one_signed_with_another_key_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 5)
    assert cli("audit", "anchor", "--output", str(tmp_path / "a.json"), "--store", url).returncode == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    doc["notification_id"] = 3  # an anchor moved back to fit a truncated log
    (tmp_path / "forged.json").write_text(json.dumps(doc))
    forged = cli("audit", "verify", "--anchor", str(tmp_path / "forged.json"), "--store", url)
    assert forged.returncode == 1 and "bad signature" in one_line(forged)
    other = cli("audit", "verify", "--anchor", str(tmp_path / "a.json"), "--store", url, key="another-key-0000000000")
    assert other.returncode == 1 and "signed with another key" in one_line(other)


def test_anchoring_needs_the_key_and_a_place(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 2)
    no_key = cli("audit", "anchor", "--output", str(tmp_path / "a.json"), "--store", url, key=None)
    assert no_key.returncode == 2 and "AUDIT__ANCHOR_KEY" in one_line(no_key) and "Traceback" not in no_key.stderr
    nowhere = cli("audit", "anchor", "--store", url)
    assert nowhere.returncode == 2 and "give one of --output FILE or --to" in one_line(nowhere)
    tampered_log = Tamper(url)
    tampered_log.run(("UPDATE {t} SET state = CAST(replace(CAST(state AS TEXT), '\"close\"', '\"close\" ') AS BLOB) WHERE {id} = %s", (1,)))
    refused = cli("audit", "anchor", "--output", str(tmp_path / "b.json"), "--store", url)
    assert refused.returncode == 1 and "NOT intact" in one_line(refused) and not (tmp_path / "b.json").exists()


def test_backup_create_anchors_itself_and_refuses_a_rewound_log_unless_accepted(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    dest = tmp_path / "backups"
    add_candles(url, 0, 20)
    first = cli("backup", "create", "--dest", str(dest), "--store", url, "--json")
    assert first.returncode == 0, first.stderr
    anchor = json.loads(first.stdout)["anchor"]
    assert anchor and Path(anchor).name == "anchor.json" and Path(anchor).is_file()
    Tamper(url).run(("DELETE FROM {t} WHERE {id} > %s", (15,)), ("DELETE FROM stored_events_chain WHERE notification_id > %s", (15,)))
    refused = cli("backup", "create", "--dest", str(dest), "--store", url)
    assert refused.returncode == 1
    assert "the log ends at notification 15 but the newest backup" in one_line(refused) and "--accept-rewind" in one_line(refused)
    # the backup destination's anchors reveal it too
    checked = cli("audit", "verify", "--anchor", str(dest), "--store", url)
    assert checked.returncode == 1 and "no longer reaches" in one_line(checked)
    accepted = cli("backup", "create", "--dest", str(dest), "--store", url, "--accept-rewind", "restore drill 2026-12", "--json")
    assert accepted.returncode == 0, accepted.stderr
    name = json.loads(accepted.stdout)["name"]
    manifest = json.loads((dest / name / "manifest.json").read_text())
    rewind = manifest["extra"]["accepted_rewind"]
    assert rewind["reason"] == "restore drill 2026-12" and rewind["previous_reach"] == 20 and rewind["log_ends_at"] == 15
    # the next backup compares with the newest one (the accepted rewind), not the older, longer one
    add_candles(url, 100, 3)
    assert cli("backup", "create", "--dest", str(dest), "--store", url).returncode == 0
