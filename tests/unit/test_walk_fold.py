"""projections/ledger/page.py ``folded``: a decision right after the CandleClosed of its run, product and candle
rides on that candle's row; compared over whole arrow columns, it must give the rows of the row-by-row fold that
a small page takes (page_rows.walk_rows), including nulls, a page's last row and decisions one after another."""

from __future__ import annotations

import json
import random

import duckdb
import pyarrow as pa

from projections.engine.base import PAGE
from projections.engine.page_candles import SHARED_FROM
from projections.engine.pages import BATCH_VIEW
from projections.ledger.book import Event
from projections.ledger.page import WALK_TYPES, folded, walk_events
from projections.ledger.page_rows import parse, walk_rows

_TYPES = ("CandleClosed", "CandleClosed", "DecisionMade", "DecisionMade", "DecisionFailed", "OrderFilled",
          "CandleCorrected", "RunStarted")


def _rows(rng: random.Random, count: int) -> list[tuple]:
    """Events of random kinds, a candle often followed by a decision naming it (of its run and product, or not)."""
    rows: list[tuple] = []
    while len(rows) < count:
        nid = len(rows) + 1
        kind = rng.choice(_TYPES)
        run = rng.choice(("r1", "r1", "r2", None))
        product = rng.choice(("BTC-USD", "BTC-USD", "ETH-BTC", None))
        start = rng.choice((0, 3600, 7200, None)) if kind.startswith("Candle") else None
        candle_start = rng.choice((0, 3600, 7200, None)) if kind.startswith("Decision") else None
        rows.append((nid, kind, f"s{nid}", run, 1_000 * nid, product, "1h", start, "1.5", candle_start, None, None,
                     None, None, None, None, None, None, None, None))
        if kind == "CandleClosed" and rng.random() < 0.7:
            decided = (rng.choice(("DecisionMade", "DecisionFailed")), rng.choice((run, run, run, "r2", None)),
                       rng.choice((product, product, product, "ETH-BTC")), rng.choice((start, start, start, 60)))
            rows.append((nid + 1, decided[0], f"s{nid + 1}", decided[1], 1_000 * nid + 1, decided[2], None, None, None,
                         decided[3], None, None, None, None, None, None, None, None, None, None))
    return rows


def _as_duckdb_gives(rows: list[tuple]) -> pa.Table:
    """The rows as arrow, with the column types DuckDB gives the walk's statement."""
    con = duckdb.connect()
    names = Event._fields[:20]
    kinds = ["BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "BIGINT",
             *["VARCHAR"] * 10]
    columns = ", ".join(f'"{name}" {kind}' for name, kind in zip(names, kinds))
    con.execute(f"CREATE TABLE w ({columns})")
    if rows:
        con.executemany(f"INSERT INTO w VALUES ({', '.join('?' * 20)})", rows)
    return con.sql("SELECT * FROM w ORDER BY nid").to_arrow_table()


def _walked(rows: list[tuple]) -> list[tuple]:
    """The rows walk_rows keeps (a candle of no run only when a decision of the page names it): folded's input."""
    named = {(r[5], r[9]) for r in rows if r[1] in ("DecisionMade", "DecisionFailed") and r[5] is not None
             and r[9] is not None}
    return [r for r in rows if not r[1].startswith("Candle") or (r[1] == "CandleClosed" and r[3] is not None)
            or (r[5] is not None and r[7] is not None and (r[5], r[7]) in named)]


def test_folded_gives_the_row_by_row_fold_on_random_pages():
    rng = random.Random(5)
    carried = 0
    for _ in range(120):
        rows = _rows(rng, rng.choice((1, 2, 3, 9, 40)))
        expected = [Event(*r) for r in walk_rows(rows)]
        got = folded(_as_duckdb_gives(_walked(rows)))
        assert got == expected, rows
        assert [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in expected]
        carried += sum(r.dnid is not None for r in got)
    assert carried > 30  # the pages did hold decisions riding on their candles


def test_a_decision_rides_only_on_the_candle_right_before_it():
    candle = (1, "CandleClosed", "c", "r1", 10, "BTC-USD", "1h", 3600, "2", None, *[None] * 10)
    decision = (2, "DecisionMade", "d", "r1", 11, "BTC-USD", None, None, None, 3600, *[None] * 10)
    other = (3, "DecisionMade", "d2", "r1", 12, "BTC-USD", None, None, None, 3600, *[None] * 10)
    got = folded(_as_duckdb_gives([candle, decision, other]))
    assert [(r.nid, r.dnid, r.dat, r.dtype) for r in got] == [(1, 2, 11, "DecisionMade"), (3, None, None, None)]
    # another run's decision, or one naming another candle, does not ride
    for changed in ({3: "r2"}, {9: 7200}, {5: "ETH-BTC"}, {3: None}):
        d = list(decision)
        for i, v in changed.items():
            d[i] = v
        got = folded(_as_duckdb_gives([candle, tuple(d)]))
        assert [(r.nid, r.dnid) for r in got] == [(1, None), (2, None)], changed
    assert folded(_as_duckdb_gives([])) == []
    assert folded(_as_duckdb_gives([candle])) == [Event(*candle)]


def _page(events: list[tuple[str, dict]], padding: int = 0) -> pa.Table:
    """A projector's page of ``events`` (type, payload), after ``padding`` events the walk does not read."""
    kinds = ["ControlStarted"] * padding + [kind for kind, _ in events]
    payloads = ['{"originator_id": "00000000-0000-4000-8000-000000000000"}'] * padding + [
        json.dumps(payload) for _, payload in events]
    return pa.table({"notification_id": pa.array(range(1, len(kinds) + 1), pa.int64()),
                     "topic": [f"domain.x:{k}" for k in kinds], "event_type": kinds, "payload": payloads})


def test_the_walk_reads_the_candles_a_decision_names_and_a_runs_candles_on_either_path():
    """walk_events' statement and arrow (a page shared by the projector, or parsed by its own statement) give the
    rows of the Python reading of a small page: every non-candle event, a run's CandleClosed, and a candle of no
    run (imported, or recorded by another run) or its correction only when a decision of the page names it."""
    run, other = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"

    def candle(kind, start, run_id, close):
        return kind, {"originator_id": f"3333333{start}-3333-4333-8333-333333333333", "run_id": run_id,
                      "occurred_at": f"2024-01-01T0{start + 1}:00:00Z", "product": "ETH-BTC", "granularity": "1h",
                      "start": f"2024-01-01T0{start}:00:00Z", "close": close}

    def decision(start, run_id, product="ETH-BTC"):
        return "DecisionMade", {"originator_id": f"4444444{start}-4444-4444-8444-444444444444", "run_id": run_id,
                                "occurred_at": f"2024-01-01T0{start + 1}:00:01Z", "product": product,
                                "candle_start": f"2024-01-01T0{start}:00:00Z"}

    events = [candle("CandleClosed", 1, None, "0.0512"),  # imported, named below: read
              candle("CandleClosed", 2, None, "0.0513"),  # imported, never named: not read
              candle("CandleCorrected", 1, None, "0.05121"),  # a correction of a named candle: read
              candle("CandleClosed", 3, run, "0.0514"), decision(3, run),  # a run's candle, its decision riding
              decision(1, run), decision(2, other, product="BTC-USD"),  # names candle 1; another product's 2
              candle("CandleClosed", 4, other, "0.0515")]
    table = _page(events)
    expected = [Event(*r) for r in walk_rows(parse(table, 0, frozenset(WALK_TYPES)))]
    hour = 3_600_000_000
    midnight = 1_704_067_200_000_000  # 2024-01-01 in epoch microseconds
    assert [(e.type, e.start) for e in expected if e.type.startswith("Candle")] == [
        ("CandleClosed", midnight + hour), ("CandleCorrected", midnight + hour), ("CandleClosed", midnight + 3 * hour),
        ("CandleClosed", midnight + 4 * hour)]
    assert [(e.nid, e.dnid) for e in expected if e.dnid is not None] == [(4, 5)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("batch_rows", table)
    con.execute(BATCH_VIEW)
    assert walk_events(con, 0) == expected  # outside the projector: the candles parsed by the statement
    padding = SHARED_FROM + 1
    padded = _page(events, padding)
    con.register("batch_rows", padded)
    PAGE.table = padded  # the projector's page, large enough to share one parse of its candles
    try:
        got = walk_events(con, padding)
    finally:
        PAGE.table = None
    assert [r._replace(nid=r.nid - padding, dnid=None if r.dnid is None else r.dnid - padding) for r in got] == expected
