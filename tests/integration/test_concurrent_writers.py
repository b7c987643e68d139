"""Two real processes write the same order: one wins, the other gets a clear conflict."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from decimal import Decimal as D
from pathlib import Path

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.order import Order, OrderStatus
from infrastructure.eventstore.chain import verify_chain
from tests.conftest import T0
from tests.support.recording import record

ROOT = Path(__file__).resolve().parents[2]

WRITER = r"""
import sys, time, uuid
from pathlib import Path
from datetime import datetime, timezone
from api.bootstrap import open_store
from application.errors import ConcurrencyConflict
from domain.events import EventMeta
url, order_id, action, sync = sys.argv[1], uuid.UUID(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
app = open_store(url)
meta = EventMeta(datetime(2024, 1, 1, tzinfo=timezone.utc), actor=action)
order = app.repository.get(order_id)
(sync / f"ready-{action}").touch()
deadline = time.time() + 30
while not (sync / "go").exists():
    if time.time() > deadline:
        print("timeout"); sys.exit(3)
    time.sleep(0.005)
if action == "submit":
    order.submit(meta)
else:
    order.cancel(meta, "operator")
try:
    app.record_in_order(order.collect_events())
    print("saved")
except ConcurrencyConflict as exc:
    print("conflict:", exc)
app.close()
"""


def test_two_processes_writing_one_order_one_gets_conflict(store_url, tmp_path):
    app = open_store(store_url)
    order_id = uuid.uuid4()
    record(app, Order.place(order_id, EventMeta(T0), product="BTC-USD", side="BUY", order_type="MARKET", quantity=D("1")))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, str(order_id), action, str(tmp_path)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for action in ("submit", "cancel")
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready-{a}").exists() for a in ("submit", "cancel")):
        assert time.time() < deadline, "writers never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    results = [out.strip() for out, _ in outputs]
    assert sorted(r.split(":")[0] for r in results) == ["conflict", "saved"], outputs
    assert any("another writer changed" in r and "Order" in r for r in results)
    order = app.repository.get(order_id)
    assert order.version == 2
    assert order.status in (OrderStatus.SUBMITTED, OrderStatus.CANCELLED)
    winner = "submit" if results[0].startswith("saved") else "cancel"
    assert order.status is (OrderStatus.SUBMITTED if winner == "submit" else OrderStatus.CANCELLED)
    assert verify_chain(app.recorder).ok
    app.close()
