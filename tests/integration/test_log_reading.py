"""Reading the log back: iter_log streams every event, decoded whole, as read_log's pages give them.

Run against SQLite and PostgreSQL (the `store_url` fixture; PostgreSQL skips with its reason when
absent unless TRADECORE_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
from eventsourcing.persistence import MapperDeserialisationError
from eventsourcing.utils import get_topic

from api.bootstrap import open_store
from domain.control import IncidentOpened
from domain.market import Candle, CandleClosed
from infrastructure.eventstore.mapper import decode_rows, iter_decoded
from tests.conftest import T0
from tests.integration.test_tamper_evidence import Tamper


def fill(app, meta, candles: int = 23, incidents: int = 4) -> None:
    """Candles with incidents between them: two topics interleaved in the log."""
    per = candles // incidents
    for i in range(incidents):
        app.record_candles(
            [Candle("BTC-USD", "1h", T0 + timedelta(hours=per * i + j), D("100.10"), D("110"), D("90.5"), D(f"{100 + j}.25"), D("3.5"))
             for j in range(per)],
            meta,
        )
        app.open_incident(uuid.uuid4(), meta, severity="P3", kind="drill", details=f"number {i}")
    app.record_candles([Candle("ETH-USD", "1h", T0, D("1"), D("2"), D("0.5"), D("1.5"), D("7"))], meta)


def paged(app, after=0, limit=1000, topics=()):
    out = []
    while page := app.read_log(after, limit, topics):
        out += page
        after = page[-1].notification_id
    return out


@pytest.mark.parametrize("page", [1, 3, 7, 2000])
def test_iter_log_gives_read_logs_events_in_order_for_any_page_size(app, meta, page):
    fill(app, meta)
    expected = paged(app)
    assert len(expected) == 25 and {e.topic for e in expected} == {get_topic(CandleClosed), get_topic(IncidentOpened)}
    got = list(app.iter_log(page=page))
    assert got == expected
    assert [e.notification_id for e in got] == sorted(e.notification_id for e in got)
    assert all(type(e.event.open) is D for e in got if isinstance(e.event, CandleClosed))


@pytest.mark.parametrize("page", [1, 2, 5, 2000])
def test_iter_log_honours_after_and_topics(app, meta, page):
    fill(app, meta)
    everything = paged(app)
    after = everything[9].notification_id
    incidents = [get_topic(IncidentOpened)]
    assert list(app.iter_log(after=after, page=page)) == everything[10:]
    assert list(app.iter_log(after=after, page=page, topics=incidents)) == [
        e for e in everything[10:] if e.topic == incidents[0]]
    assert list(app.iter_log(page=page, topics=incidents)) == paged(app, topics=incidents)
    assert len(list(app.iter_log(page=page, topics=incidents))) == 4
    assert list(app.iter_log(after=everything[-1].notification_id, page=page)) == []


def test_iter_decoded_equals_decode_rows(app, meta):
    fill(app, meta)
    rows = app.read_stored(0, 1000)
    made = lambda nid, topic, event: (nid, event)  # noqa: E731 - a maker that is not a NamedTuple
    assert list(iter_decoded(rows, made)) == decode_rows(rows, made)
    assert [tuple(e) for e in iter_decoded(rows, type(app.read_log(0, 1)[0]))] == [tuple(e) for e in paged(app)]


def test_a_state_that_does_not_decode_is_named_after_the_events_before_it(app, meta, store_url):
    fill(app, meta)
    everything = paged(app)
    bad = everything[12].notification_id
    Tamper(store_url).run(("UPDATE {t} SET state=%s WHERE {id}=%s", (b'{"open": "not json', bad)))
    seen = []
    with pytest.raises(MapperDeserialisationError, match="cannot decode a stored"):
        for logged in app.iter_log(page=5):
            seen.append(logged)
    assert seen == everything[:12]
    with pytest.raises(MapperDeserialisationError, match="cannot decode a stored"):
        app.read_log(0, 100)


def read_ahead_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tradecore-log-read-ahead")]


def idle_connections(app) -> bool:
    """Every connection the store opened is back in its pool (PostgreSQL); SQLite's pool is not looked at."""
    pool = getattr(app.recorder.datastore.pool, "get_stats", None)
    if pool is None:
        return True
    stats = pool()
    return stats["pool_available"] == stats["pool_size"]


def test_stopping_early_releases_the_read_ahead_and_its_connection(app, meta):
    fill(app, meta)
    expected = paged(app)
    taken = []
    for logged in app.iter_log(page=2):
        taken.append(logged)
        if len(taken) == 7:
            break
    assert taken == expected[:7]
    assert read_ahead_workers() == [] and idle_connections(app)
    events = app.iter_log(page=3)
    assert [next(events) for _ in range(4)] == expected[:4]
    events.close()
    assert read_ahead_workers() == [] and idle_connections(app)
    with pytest.raises(KeyError):
        for logged in app.iter_log(page=3):
            if logged.notification_id == expected[8].notification_id:
                raise KeyError("the consumer fails")
    assert read_ahead_workers() == [] and idle_connections(app)
    assert list(app.iter_log(page=3)) == expected  # the store reads on as before


def test_an_error_reading_a_later_page_is_raised_in_the_consumer(app, meta, monkeypatch, store_url):
    fill(app, meta)
    expected = paged(app)
    select = app.recorder.select_log_rows
    calls = []

    def failing(after, limit, topics=()):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise OSError("the server went away")
        return select(after, limit, topics)

    monkeypatch.setattr(app.recorder, "select_log_rows", failing)
    seen = []
    with pytest.raises(OSError, match="the server went away"):
        for logged in app.iter_log(page=4):
            seen.append(logged)
    assert seen == expected[:8]
    assert read_ahead_workers() == [] and idle_connections(app)
    assert calls[0] == threading.current_thread().name
    if store_url.startswith("postgresql"):  # PostgreSQL reads each later page a page ahead, in a worker
        assert all(name.startswith("tradecore-log-read-ahead") for name in calls[1:])


def test_sqlite_reads_the_log_in_reads_of_at_most_rows_per_read_whatever_the_page(tmp_path, meta):
    """A SQLite log is read ROWS_PER_READ rows at a time (a read's rows stay in the core's cache while decoded):
    iter_log gives every event in order across those reads, with ``after`` and ``topics`` as before."""
    app = open_store(f"sqlite:///{tmp_path}/events.db")
    try:
        fill(app, meta)
        expected = paged(app)
        app.recorder.ROWS_PER_READ = 4
        reads = list(app.recorder.iter_log_pages(0, 2000))
        assert [len(r) for r in reads] == [4, 4, 4, 4, 4, 4, 1]  # 25 rows: six full reads, then a short one ends it
        assert [row[0] for r in reads for row in r] == [e.notification_id for e in expected]
        assert list(app.iter_log(page=2000)) == expected
        assert list(app.iter_log(page=3)) == expected  # a page smaller than a read is read as asked
        middle = expected[10].notification_id
        candles = [e for e in expected if e.notification_id > middle and e.topic == get_topic(CandleClosed)]
        assert list(app.iter_log(after=middle, page=2000, topics=[get_topic(CandleClosed)])) == candles
        app.recorder.ROWS_PER_READ = 5
        assert [len(r) for r in app.recorder.iter_log_pages(0, 2000)] == [5, 5, 5, 5, 5, 0]  # a multiple: an empty read ends it
        assert list(app.iter_log(page=2000)) == expected
    finally:
        app.close()
