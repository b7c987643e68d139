"""A process on a SQLite store never imports the PostgreSQL stack (eventsourcing.postgres, psycopg, its pool):
~0.1 s of every command's start. The PostgreSQL recorder is still found by its topic and by its old name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventsourcing.utils import resolve_topic

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import api.cli.main  # every command module the CLI mounts
from api.bootstrap import open_store
from application.trading.candle_history import logged_candles
app = open_store(sys.argv[1])
logged_candles(app, "BTC-USD", "1h")
app.close()
print(",".join(m for m in ("psycopg", "psycopg_pool", "eventsourcing.postgres") if m in sys.modules))
"""


def test_a_sqlite_process_never_imports_psycopg(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, f"sqlite:///{tmp_path}/events.db"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported on SQLite: {done.stdout.strip()}"


def test_the_postgres_recorder_is_found_by_its_topic_and_its_old_name():
    from infrastructure.eventstore import chain
    from infrastructure.eventstore.chain_postgres import ChainedPostgresRecorder
    from infrastructure.eventstore.store import POSTGRES_RECORDER_TOPIC

    assert resolve_topic(POSTGRES_RECORDER_TOPIC) is ChainedPostgresRecorder
    assert chain.ChainedPostgresRecorder is ChainedPostgresRecorder
