"""Read nodes learn that the log grew by LISTEN/NOTIFY on PostgreSQL (polling on SQLite): a trigger on the
events table notifies every listener of that schema when an append commits, and only of that schema."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from api.bootstrap import open_store
from domain.control import Run, RunMode
from domain.events import EventMeta
from infrastructure.following.log_waker import NotifyWaker, PollingWaker, log_waker
from infrastructure.eventstore.chain import verify_chain
from tests.conftest import fresh_pg_url, require_postgres
from tests.support.recording import record

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def append_one(app) -> None:
    run_id = uuid.uuid4()
    record(app, Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode=RunMode.PAPER, product="BTC-USD",
                          granularity="1h", strategy="rules", config_hash="h", code_version="t",
                          initial_balance=Decimal(1), bot_id="alpha"))


def timed_wait(waker, timeout: float) -> float:
    started = time.monotonic()
    waker.wait(timeout)
    return time.monotonic() - started


def test_sqlite_is_followed_by_polling(tmp_path):
    waker = log_waker(f"sqlite:///{tmp_path}/e.db")
    assert isinstance(waker, PollingWaker) and waker.how == "polling"
    assert 0.09 <= timed_wait(waker, 0.1) < 1


@pytest.mark.postgres
def test_every_listening_node_wakes_when_an_append_commits_and_only_for_its_schema():
    require_postgres()
    url, other_url = fresh_pg_url(), fresh_pg_url()
    app, other = open_store(url), open_store(other_url)
    first, second = log_waker(url), log_waker(url)  # two read nodes; the second finds the trigger installed
    try:
        assert isinstance(first, NotifyWaker) and isinstance(second, NotifyWaker) and first.how == "listen/notify"
        woke: dict[str, float] = {}

        def listen(name, waker):
            woke[name] = timed_wait(waker, 1 if name == "quiet" else 10)

        threads = [threading.Thread(target=listen, args=(n, w)) for n, w in (("first", first), ("second", second))]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        append_one(app)
        for thread in threads:
            thread.join(15)
        assert woke["first"] < 3 and woke["second"] < 3  # woken by the commit, not by the 10 s timeout
        # An append to another store (schema) on the same server does not wake them.
        quiet = threading.Thread(target=listen, args=("quiet", first))
        quiet.start()
        time.sleep(0.2)
        append_one(other)
        quiet.join(15)
        assert woke["quiet"] >= 0.9
        assert verify_chain(app.recorder).ok  # the trigger only notifies: the log is as written
    finally:
        first.close(), second.close()
        app.close(), other.close()
