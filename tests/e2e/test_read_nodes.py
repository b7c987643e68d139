"""Two `tradecore serve` read nodes following one PostgreSQL log (LISTEN/NOTIFY), each with its own DuckDB file:
both see what a writer appends within a second, answer ?bot= and GET /bots alike, and label metrics by bot."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from api.bootstrap import open_store
from domain.control import Run, RunMode
from domain.events import EventMeta
from tests.conftest import fresh_pg_url, require_postgres
from tests.e2e.test_serve import ROOT, VIEWER, environment, free_port, wait_caught_up
from tests.support.recording import funded_account, record

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def start_bot_run(app, bot: str) -> uuid.UUID:
    run_id = uuid.uuid4()
    meta = EventMeta(T0, "system", run_id, None, run_id)
    record(app, Run.begin(run_id, meta, mode=RunMode.PAPER, product="BTC-USD", granularity="1m", strategy="rules",
                          config_hash="h", code_version="t", initial_balance=Decimal(1000), bot_id=bot),
           funded_account(f"run-{run_id}", Decimal(1000), meta))
    return run_id


def test_two_read_nodes_follow_one_postgres_log(tmp_path):
    require_postgres()
    store = fresh_pg_url()
    app = open_store(store)
    start_bot_run(app, "bot-0")
    nodes = []
    try:
        for name in ("a", "b"):
            port, log = free_port(), tmp_path / f"serve-{name}.log"
            env = {**environment(tmp_path), "SYSTEM__LOG_FILE": str(log)}
            process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--store", store,
                                        "--readmodel", str(tmp_path / f"readmodel-{name}.duckdb")],
                                       cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            nodes.append((f"http://127.0.0.1:{port}", process, log))
        for url, process, _ in nodes:
            wait_caught_up(url, process)
        lags: dict[str, list[float]] = {url: [] for url, _, _ in nodes}
        with httpx.Client(timeout=5) as client:
            for i in range(1, 21):
                bot = f"bot-{i}"
                appended = time.monotonic()
                start_bot_run(app, bot)
                for url in lags:
                    while True:
                        answer = client.get(f"{url}/runs?bot={bot}", headers=VIEWER).json()
                        if answer["items"]:
                            lags[url].append(time.monotonic() - appended)
                            break
                        assert time.monotonic() - appended < 10, f"{url} never showed {bot}"
                        time.sleep(0.005)
            for url, node_lags in lags.items():
                p50 = statistics.median(node_lags)
                print(f"{url}: append-to-visible p50 {p50 * 1000:.0f} ms, max {max(node_lags) * 1000:.0f} ms")
                assert max(node_lags) < 2.0 and p50 < 0.5, node_lags  # woken by NOTIFY, not the 0.5 s safety poll
            bots = [client.get(f"{url}/bots", headers=VIEWER).json()["items"] for url in lags]
            assert bots[0] == bots[1] and [b["bot_id"] for b in bots[0]] == sorted(f"bot-{i}" for i in range(21))
            for url in lags:
                detailed = client.get(f"{url}/health/detailed", headers=VIEWER).json()
                assert detailed["components"]["projector"]["following"] == "listen/notify"
                positions = client.get(f"{url}/positions?bot=bot-7", headers=VIEWER).json()
                assert positions["run"]["bot_id"] == "bot-7"
                assert 'trading_bot_halted{bot="bot-7"} 0.0' in client.get(f"{url}/metrics").text
    finally:
        app.close()
        for url, process, _ in nodes:
            if process.poll() is None:
                process.terminate()
                assert process.wait(20) == 0, process.stderr.read()
    for _, _, log in nodes:
        assert "read node follows the log by listen/notify" in log.read_text()
