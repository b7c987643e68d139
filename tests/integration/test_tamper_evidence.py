"""`tradecore audit verify` finds the first edited, deleted, inserted or reordered event.

The log is tampered with the way an intruder would: by editing the database
directly, behind the application's back.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path


from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.eventstore.chain import verify_chain
from infrastructure.eventstore.store import parse_store_url
from tests.conftest import T0

ROOT = Path(__file__).resolve().parents[2]


def seed(url: str) -> None:
    app = open_store(url)
    meta = EventMeta(T0, actor="test")
    app.record_candles(
        [Candle("BTC-USD", "1h", T0 + timedelta(hours=i), D("100"), D("110"), D("90"), D(str(100 + i)), D("1")) for i in range(6)],
        meta,
    )
    app.operator_halt("drill", "P2", meta)
    assert verify_chain(app.recorder).ok
    app.close()


class Tamper:
    """Direct SQL against the store's events table, per backend."""

    def __init__(self, url: str):
        self.location = parse_store_url(url)

    def run(self, *statements: tuple[str, tuple]) -> None:
        if self.location.backend == "sqlite":
            with sqlite3.connect(self.location.sqlite_path) as conn:
                for sql, params in statements:
                    conn.execute(sql.replace("%s", "?").replace("{id}", "rowid").replace("{t}", "stored_events"), params)
        else:
            import psycopg

            with psycopg.connect(
                host=self.location.host, port=self.location.port, user=self.location.user, dbname=self.location.dbname
            ) as conn:
                table = f'"{self.location.schema}".tradecore_events'
                for sql, params in statements:
                    conn.execute(sql.replace("{id}", "notification_id").replace("{t}", table), params)

    def row(self, nid: int) -> tuple:
        if self.location.backend == "sqlite":
            with sqlite3.connect(self.location.sqlite_path) as conn:
                return conn.execute("SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid=?", (nid,)).fetchone()
        import psycopg

        with psycopg.connect(host=self.location.host, port=self.location.port, user=self.location.user, dbname=self.location.dbname) as conn:
            return conn.execute(
                f'SELECT originator_id, originator_version, topic, state FROM "{self.location.schema}".tradecore_events WHERE notification_id=%s',
                (nid,),
            ).fetchone()


def verify_cli(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "audit", "verify", "--store", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def caught(url: str, *statements: tuple[str, tuple], first: int, word: str = "") -> subprocess.CompletedProcess:
    """Edit the stored log with raw SQL; `audit verify` exits 1 naming notification ``first`` (and ``word``)."""
    Tamper(url).run(*statements)
    result = verify_cli(url)
    assert result.returncode == 1, result.stdout
    assert f"first bad notification id {first}" in result.stdout and word in result.stdout, result.stdout
    return result


def test_intact_log_verifies_with_exit_0(store_url):
    seed(store_url)
    result = verify_cli(store_url)
    assert result.returncode == 0, result.stderr
    assert "log intact: 8 events" in result.stdout


def test_edited_event_is_named(store_url):
    seed(store_url)
    oid, version, topic, state = Tamper(store_url).row(3)
    forged = bytes(state).replace(b'"close":"102"', b'"close":"999"')
    assert forged != bytes(state)
    caught(store_url, ("UPDATE {t} SET state=%s WHERE {id}=%s", (forged, 3)), first=3, word="edited")


def test_deleted_event_is_named(store_url):
    seed(store_url)
    Tamper(store_url).run(("DELETE FROM {t} WHERE {id}=%s", (4,)))
    result = verify_cli(store_url)
    assert result.returncode == 1
    assert "first bad notification id 4" in result.stdout and "deleted" in result.stdout


def test_inserted_event_is_named(store_url):
    seed(store_url)
    tamper = Tamper(store_url)
    oid, version, topic, state = tamper.row(2)
    import uuid

    forged_id = uuid.uuid4()
    value = forged_id.hex if tamper.location.backend == "sqlite" else forged_id
    tamper.run(("INSERT INTO {t} (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)", (value, 1, topic, bytes(state))))
    result = verify_cli(store_url)
    assert result.returncode == 1
    assert "has no chain link" in result.stdout
    assert "first bad notification id 9" in result.stdout


def test_reordered_events_are_named(store_url):
    seed(store_url)
    tamper = Tamper(store_url)
    a, b = tamper.row(2), tamper.row(5)
    # Swap the contents of two rows: the ids stay, the order of facts changes.
    tamper.run(
        ("UPDATE {t} SET originator_version=originator_version+100 WHERE {id} IN (%s, %s)", (2, 5)),
        ("UPDATE {t} SET originator_id=%s, originator_version=%s, topic=%s, state=%s WHERE {id}=%s", (b[0], b[1], b[2], bytes(b[3]), 2)),
        ("UPDATE {t} SET originator_id=%s, originator_version=%s, topic=%s, state=%s WHERE {id}=%s", (a[0], a[1], a[2], bytes(a[3]), 5)),
    )
    result = verify_cli(store_url)
    assert result.returncode == 1
    assert "first bad notification id 2" in result.stdout


def test_verify_on_unusable_store_url_exits_2_naming_it():
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "audit", "verify", "--store", "mysql://nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unsupported scheme" in result.stderr
