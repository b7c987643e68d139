"""The money projections (positions, pnl, risk_usage) against the engine's own accounting.

Real logs come from the application (a backtest over the bundled Coinbase
candles); the projections are applied to an in-memory DuckDB from
``batch_events`` built here as the projector builds it, so these tests do not
depend on the projector.
"""

from __future__ import annotations

import bisect
import json
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pytest

from api.bootstrap import open_store, paper_exchange, loop_settings, decision_model
from application.trading.backtest import run_backtest
from domain.accounting import Portfolio
from domain.events import EventMeta
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings
from projections.ledger.book import Event
from projections.ledger.page import WALK_TYPES, page_marks, walk_events
from projections.ledger.page_rows import marks_rows, parse, walk_rows
from projections.ledger.pnl import PnlProjection
from projections.engine.pages import BATCH_VIEW
from projections.ledger.positions import PositionsProjection
from projections.ledger.risk_usage import RiskUsageProjection
from tests.conftest import T0

RUN_A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
RUN_B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
PUBLIC = ("positions", "position_history", "pnl_daily", "equity_curve", "risk_usage")
HUNDRED = Decimal(100)


def projections():
    return [PositionsProjection(), PnlProjection(), RiskUsageProjection()]


@dataclass
class Logs:
    rows: list[tuple[int, str, bytes]]
    events: list  # decoded, in log order
    summaries: dict
    frames: dict


@pytest.fixture(scope="module")
def history():
    return read_candle_file(bundled_candles_path()).frame.iloc[:2600]


def backtest(app, frame, run_id, settings):
    return run_backtest(
        app, frame, exchange=paper_exchange(settings, id_prefix="paper"), strategy=decision_model(settings),
        settings=loop_settings(settings, flush_every=250), initial_balance=Decimal(10000), config_hash="test",
        code_version="test", run_id=run_id,
    )


@pytest.fixture(scope="module")
def logs(tmp_path_factory, history):
    """Two runs in one store; B overlaps A's candles, so 500 of B's candles are not recorded again."""
    app = open_store(f"sqlite:///{tmp_path_factory.mktemp('money')}/events.db")
    frames = {RUN_A: history.iloc[:1500], RUN_B: history.iloc[1000:2600]}
    summaries = {
        RUN_A: backtest(app, frames[RUN_A], RUN_A, load_settings(env={})),
        # A tight daily-loss limit so risk refuses entries with rule max_daily_loss.
        RUN_B: backtest(app, frames[RUN_B], RUN_B, load_settings(env={"RISK__MAX_DAILY_LOSS_PCT": "0.5"})),
    }
    rows = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(0, 10**9)]
    events = [e.event for e in app.iter_log()]
    app.close()
    return Logs(rows, events, summaries, frames)


# --- projecting without the projector ---------------------------------------------------------


def load_batch(con: duckdb.DuckDBPyConnection, rows, low: int, high: int) -> pa.Table:
    """``batch_events`` (projections/engine/base.py) holding the log rows low < notification_id <= high."""
    ids = [r[0] for r in rows]
    page = rows[bisect.bisect_right(ids, low):bisect.bisect_right(ids, high)]
    table = pa.table({
        "notification_id": pa.array([r[0] for r in page], pa.int64()),
        "topic": [r[1] for r in page],
        "event_type": [r[1].rpartition(":")[2] for r in page],
        "payload": [r[2].decode() for r in page],
    })
    con.register("batch_rows", table)  # the projector's own view over a page (projections/engine/pages.py)
    con.execute(BATCH_VIEW)
    return table


def project(rows, cuts=None, overlap: int = 0) -> duckdb.DuckDBPyConnection:
    """Apply the log in pages ending at ``cuts`` (one page when None); each page also holds
    ``overlap`` rows already applied, as a projector's shared page does for a projection ahead."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    chosen = projections()
    for p in chosen:
        p.create(con)
    last = rows[-1][0]
    position = 0
    for cut in [*(cuts or []), last]:
        if cut <= position:
            continue
        load_batch(con, rows, max(position - overlap, 0), cut)
        for p in chosen:
            con.begin()
            p.apply(con, position)
            con.commit()
        position = cut
    return con


def dump(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT CAST(t AS VARCHAR) AS r FROM {table} AS t ORDER BY r").fetchall()]


def all_tables() -> list[str]:
    return [t for p in projections() for t in p.tables]


@pytest.fixture(scope="module")
def con(logs):
    return project(logs.rows)


def one(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()


# --- the engine's numbers, exactly ----------------------------------------------------------------


@pytest.mark.parametrize("run", [RUN_A, RUN_B])
def test_positions_equal_the_runs_summary_exactly(con, logs, run):
    summary = logs.summaries[run]
    (quantity, realized, fees, mark), = one(
        con, "SELECT quantity, realized_pnl, fees, mark_price FROM positions WHERE run_id = ?", [run])
    assert summary.trades > 5
    assert realized == summary.realized_pnl
    assert fees == summary.fees
    assert mark == logs.frames[run]["close"].iloc[-1]  # marked at the run's own last candle
    history = one(con, """SELECT count(*), arg_max(cumulative_realized_pnl, notification_id),
                          arg_max(quantity, notification_id), sum(fee) FROM position_history WHERE run_id = ?""", [run])
    assert history == [(summary.fills, summary.realized_pnl, quantity, summary.fees)]


@pytest.mark.parametrize("run", [RUN_A, RUN_B])
def test_pnl_daily_adds_up_to_the_runs_totals(con, logs, run):
    summary = logs.summaries[run]
    totals = one(con, """SELECT sum(realized_pnl), sum(fees), sum(trades), sum(wins), arg_max(equity, day),
                         sum(net_pnl) FROM pnl_daily WHERE run_id = ?""", [run])
    assert totals == [(summary.realized_pnl, summary.fees, summary.trades, summary.wins, summary.final_equity,
                       summary.realized_pnl - summary.fees)]
    # Each day ends where the equity curve's last candle of that day ends.
    mismatched = one(con, """
        SELECT d.day FROM pnl_daily d JOIN (
            SELECT CAST(timezone('UTC', candle_end) AS DATE) AS day, arg_max(equity, candle_end) AS equity
            FROM equity_curve WHERE run_id = ? GROUP BY ALL) c USING (day)
        WHERE d.run_id = ? AND d.equity <> c.equity""", [run, run])
    assert mismatched == []


@pytest.mark.parametrize("run", [RUN_A, RUN_B])
def test_equity_curve_has_every_candle_of_the_run_and_ends_at_its_final_equity(con, logs, run):
    summary, frame = logs.summaries[run], logs.frames[run]
    starts = one(con, "SELECT epoch_us(candle_start) FROM equity_curve WHERE run_id = ? ORDER BY 1", [run])
    assert [s for (s,) in starts] == [int(ts.timestamp() * 1_000_000) for ts in frame.index]
    assert len(starts) == summary.candles
    (last,), = one(con, "SELECT arg_max(equity, candle_start) FROM equity_curve WHERE run_id = ?", [run])
    assert last == summary.final_equity


@pytest.mark.parametrize("run", [RUN_A, RUN_B])
def test_equity_curve_equals_an_independent_recomputation(con, logs, run):
    """Equity at each close = cash and quantity after every fill dated up to that close, times the close."""
    frame = logs.frames[run]
    placed, times, states = {}, [], []
    portfolio = Portfolio()
    for e in logs.events:
        if e.run_id != run:
            continue
        if e.event_type == "FundsDeposited":
            portfolio.deposit(e.amount)
        elif e.event_type == "OrderPlaced":
            placed[e.originator_id] = e
        elif e.event_type in ("OrderFilled", "OrderPartiallyFilled"):
            order = placed[e.originator_id]
            portfolio.apply_fill(order.product, order.side, e.quantity, e.price, e.fee)
            times.append(e.occurred_at)
            states.append((portfolio.cash, portfolio.position(order.product).quantity))
    expected = []
    for start, close in zip(frame.index, frame["close"]):
        end = start.to_pydatetime() + (frame.index[1] - frame.index[0]).to_pytimedelta()
        i = bisect.bisect_right(times, end)
        cash, quantity = states[i - 1] if i else (Decimal(10000), Decimal(0))
        expected.append((close, cash, quantity, cash + quantity * close))
    got = one(con, """SELECT close, cash, position_quantity, equity FROM equity_curve
                      WHERE run_id = ? ORDER BY candle_start""", [run])
    assert got == expected
    peaks = one(con, "SELECT max(drawdown_pct), min(drawdown_pct) FROM equity_curve WHERE run_id = ?", [run])
    assert peaks[0][0] > 0 and peaks[0][1] == 0


@pytest.mark.parametrize("run", [RUN_A, RUN_B])
def test_day_start_equity_is_the_one_risk_used(con, logs, run):
    """Every RiskAssessed carries the day_start_equity the engine's risk check used: the projection agrees."""
    verdicts = [e for e in logs.events if e.event_type == "RiskAssessed" and e.run_id == run]
    assert verdicts
    days = dict(one(con, "SELECT day, day_start_equity FROM pnl_daily WHERE run_id = ?", [run]))
    usage = dict(one(con, "SELECT day, day_start_equity FROM risk_usage WHERE run_id = ?", [run]))
    for v in verdicts:
        assert days[v.occurred_at.date()] == v.numbers["day_start_equity"], v.occurred_at
        assert usage[v.occurred_at.date()] == v.numbers["day_start_equity"], v.occurred_at


def test_risk_usage_rows_follow_the_rule_and_the_limit(con, logs):
    rows = one(con, """SELECT run_id, day, day_start_equity, equity, daily_loss_pct, worst_daily_loss_pct,
                       max_daily_loss_pct, limit_source, pct_of_limit_used, max_daily_loss_breached, exposure,
                       open_positions FROM risk_usage ORDER BY run_id, day""")
    curve = {(r, d): (q, c) for r, d, q, c in one(con, """
        SELECT run_id, CAST(timezone('UTC', candle_end) AS DATE), arg_max(position_quantity, candle_end),
               arg_max(close, candle_end) FROM equity_curve GROUP BY ALL""")}
    refused = {(e.run_id, e.occurred_at.date()) for e in logs.events
               if e.event_type == "RiskAssessed" and e.rule == "max_daily_loss"}
    assert refused and {r for r, _ in refused} == {RUN_B}
    first_refusal = min(e.occurred_at.date() for e in logs.events if getattr(e, "rule", None) == "max_daily_loss")
    for run, day, start, equity, loss, worst, limit, source, used, breached, exposure, open_ in rows:
        expected_loss = (start - equity) / start * HUNDRED
        assert abs(loss - expected_loss) < Decimal("1e-17")
        assert worst >= loss
        if run == RUN_A or day < first_refusal:
            assert (limit, source) == (Decimal(3), "default")
        else:  # B's limit is known from its first max_daily_loss verdict on
            assert (limit, source) == (Decimal("0.5"), "risk_assessed")
        # the share of the limit used at the day's worst (domain/run_book.py), never below 0
        assert abs(used - max(Decimal(0), worst / limit * HUNDRED)) < Decimal("1e-15")
        if (run, day) in refused:
            assert breached
        if not breached:
            assert worst < limit
        quantity, close = curve[(run, day)]
        assert exposure == abs(quantity * close) and open_ == (1 if quantity else 0)
    assert any(b for *_, b, _, _ in rows)


def test_two_runs_are_kept_apart_by_run_id(con, logs):
    for table in PUBLIC:
        runs = {r for (r,) in one(con, f"SELECT DISTINCT run_id FROM {table}")}
        assert runs == {RUN_A, RUN_B}, table
    a, b = logs.summaries[RUN_A], logs.summaries[RUN_B]
    assert a.realized_pnl != b.realized_pnl  # the comparisons above are not trivially equal


def test_money_columns_are_decimal(con):
    money = {
        "positions": ("quantity", "average_entry", "entry_cost", "realized_pnl", "fees", "unrealized_pnl",
                      "mark_price"),
        "position_history": ("fill_quantity", "price", "fee", "quantity", "average_entry", "realized_pnl",
                             "cumulative_realized_pnl", "cumulative_fees"),
        "pnl_daily": ("realized_pnl", "unrealized_pnl", "fees", "net_pnl", "day_start_equity", "equity"),
        "equity_curve": ("close", "cash", "position_quantity", "equity", "peak_equity", "drawdown_pct"),
        "risk_usage": ("day_start_equity", "equity", "daily_loss_pct", "worst_daily_loss_pct", "max_daily_loss_pct",
                       "pct_of_limit_used", "exposure"),
    }
    types = {(t, c): d for t, c, d in one(
        con, "SELECT table_name, column_name, data_type FROM information_schema.columns")}
    for table, columns in money.items():
        for column in columns:
            assert types[(table, column)] == "DECIMAL(38,18)", (table, column)
    assert types[("risk_usage", "max_daily_loss_breached")] == "BOOLEAN"
    assert types[("pnl_daily", "day")] == "DATE"


# --- batches ---------------------------------------------------------------------------------------


def test_applying_the_log_in_batches_gives_the_same_tables(con, logs):
    last = logs.rows[-1][0]
    # Pages that end between a candle (or decision) and the fills dated at it, so a
    # candle's row is finished by the next batch; at random places; and one event at a
    # time over the first run's start and the second run's start.
    fills = [n for n, topic, _ in logs.rows if topic.endswith("Filled")]
    b_start = next(n for n, topic, s in logs.rows if topic.endswith(":RunStarted") and str(RUN_B).encode() in s)
    cuts = {f - 1 for f in fills[::3]} | set(random.Random(7).sample(range(1, last), 25))
    cuts |= set(range(1, 30)) | set(range(b_start - 2, b_start + 30))
    batched = project(logs.rows, sorted(cuts), overlap=40)
    for table in all_tables():
        assert dump(batched, table) == dump(con, table), table


def test_a_page_already_applied_changes_nothing(con, logs):
    again = project(logs.rows)
    load_batch(again, logs.rows, 0, 10)  # a shared page behind this projection's position
    for p in projections():
        p.apply(again, logs.rows[-1][0])
    for table in all_tables():
        assert dump(again, table) == dump(con, table), table


def test_the_projector_catches_up_and_rebuilds_to_the_same_tables(con, logs):
    runner = pytest.importorskip("projections.engine.runner")
    rows = logs.rows
    store = SimpleNamespace(recorder=SimpleNamespace(
        select_log_rows=lambda after, limit, topics=(): [r for r in rows if r[0] > after][:limit]))
    mine = projections()
    db = runner.open_readmodel(":memory:")
    runner.catch_up(store, db, mine, batch_size=733)
    for table in all_tables():
        assert dump(db, table) == dump(con, table), table
    incremental = runner.checksums(db, mine)
    runner.rebuild(store, db, mine, batch_size=5000)
    assert runner.checksums(db, mine) == incremental


def test_a_small_page_read_in_python_gives_the_rows_of_the_sql(logs):
    """The projector reads a small page's walk rows and candle closes in Python (projections/ledger/page_rows.py);
    they must be the SQL's (projections/ledger/page.py) exactly, wherever a page starts and ends."""
    rows, last = logs.rows, logs.rows[-1][0]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rng = random.Random(11)
    starts = [0, *rng.sample(range(1, last - 1), 120)]
    for low in starts:
        high = min(last, low + rng.choice((1, 2, 7, 30, 400)))
        table = load_batch(con, rows, max(low - rng.choice((0, 0, 5)), 0), high)
        parsed = parse(table, low, frozenset(WALK_TYPES))
        assert parsed is not None, (low, high)
        assert [Event(*r) for r in walk_rows(parsed)] == walk_events(con, low), (low, high)
        key = lambda r: (r["product"], r["granularity"], r["start_us"])  # noqa: E731
        sql_marks = page_marks(con, low)
        assert marks_rows(parsed).schema == sql_marks.schema
        assert sorted(marks_rows(parsed).to_pylist(), key=key) == sorted(sql_marks.to_pylist(), key=key), (low, high)
    # a value DuckDB might read otherwise (a number where text is read, a time in another form): the SQL reads it
    candle = next(r for r in rows if r[1].endswith(":CandleClosed"))
    for change in ({"close": 101.5}, {"occurred_at": "2024-01-01 00:00:00"}, {"originator_id": "ABC"}):
        page = pa.table({"notification_id": [1], "event_type": ["CandleClosed"],
                         "payload": [json.dumps({**json.loads(candle[2]), **change})]})
        assert parse(page, 0, frozenset(WALK_TYPES)) is None, change
    assert parse(pa.table({"notification_id": [1], "event_type": ["CandleClosed"],
                           "payload": [candle[2].decode()]}), 0, frozenset(WALK_TYPES)) is not None


# --- the limit's sources ------------------------------------------------------------------------


def test_a_configured_limit_wins_and_applies_from_its_change_on(tmp_path, history):
    app = open_store(f"sqlite:///{tmp_path}/config.db")
    app.change_config("risk.max_daily_loss_pct", "2.5", "tighter", "h1", EventMeta(T0, actor="operator:alice"))
    summary = backtest(app, history.iloc[:300], RUN_A, load_settings(env={}))
    rows = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(0, 10**9)]
    app.change_config("risk.max_daily_loss_pct", None, "back to the file", "h2", EventMeta(T0, actor="operator:alice"))
    unset = [(n, t, bytes(s)) for n, t, s in app.recorder.select_log_rows(rows[-1][0], 10)]
    app.close()
    db = project(rows)
    assert set(one(db, "SELECT max_daily_loss_pct, limit_source FROM risk_usage")) == {(Decimal("2.5"), "config")}
    (state,), = one(db, "SELECT state FROM risk_usage__state WHERE key = '*'")
    assert json.loads(state)["config_limit"] == "2.5"
    assert summary.candles == 300
    both = project(rows + unset)
    (state,), = one(both, "SELECT state FROM risk_usage__state WHERE key = '*'")
    assert json.loads(state)["config_limit"] is None  # later updates of the run fall back to the next source
