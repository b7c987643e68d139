"""One log, one truth: every surface gives the same day figures for the same run and day.

A backtest with fills over two months of the bundled real candles; for every day of it, the nine named
day figures (domain/run_book.py) of ``tradecore replay --json`` (its ``day_figures``), ``tradecore report
daily --json`` (its ``day_figures``), the ``pnl_daily`` row and the ``GET /pnl/daily`` item agree to the
cent and to 0.01 percentage points; the risk score of the last day's report equals ``/risk/metrics``.
Replay folds the log itself (application/replay/), the others read the DuckDB read model built by the
money projections (projections/ledger/): two independent folds through the one run book.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.bootstrap import open_store
from api.http import create_app
from api.http.readmodel import ReadModelAccess
from application.replay.timeline import book_before_first_step, load_day
from application.replay.whatif import day_outcome
from domain.risk import RiskLimits
from domain.run_book import DAY_FIGURE_NAMES
from infrastructure.settings.loading import load_settings
from projections.engine import runner
from projections.reading.reports import daily_report
from tests.integration.test_api import backtest_read_model

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
TOKEN = "one-truth-viewer"
CENT = Decimal("0.01")
POINT = Decimal("0.01")  # percentage points
MONEY = ("day_start_equity", "end_equity", "day_pnl", "realized_pnl", "fees")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    summaries: list = []
    url, path = backtest_read_model(tmp_path_factory.mktemp("one-truth"), "2019-09-01", "2019-11-01", RUN, summaries)
    assert summaries[0].fills >= 4, "the backtest must trade for the comparison to mean anything"
    return url, path


def _agree(name: str, a, b, where: str) -> None:
    if name == "risk_score":
        assert int(a) == int(b), f"{where}: risk_score {a} != {b}"
        return
    tolerance = CENT if name in MONEY else POINT
    assert abs(Decimal(str(a)) - Decimal(str(b))) <= tolerance / 2 + Decimal("1e-12"), f"{where}: {name} {a} != {b}"


def test_every_surface_gives_the_same_day_figures(world):
    url, path = world
    con = runner.open_readmodel(path)
    access = ReadModelAccess(con)
    tokens = json.dumps([{"name": "vera", "token": TOKEN, "role": "viewer"}])
    store = open_store(url)
    try:
        client = TestClient(create_app(store, access, load_settings(env={"SYSTEM__API_TOKENS": tokens})))
        rows = {r[0]: dict(zip(DAY_FIGURE_NAMES, r[1:])) for r in con.execute(
            f"SELECT day, {', '.join(DAY_FIGURE_NAMES)} FROM pnl_daily WHERE run_id = ? ORDER BY day", [str(RUN)]
        ).fetchall()}
        items = client.get(f"/pnl/daily?run_id={RUN}&limit=1000", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        api = {date.fromisoformat(i["day"]): i for i in items["items"]}
        assert len(rows) >= 40 and set(api) == set(rows)
        traded = 0
        for day, row in rows.items():
            log = load_day(store, day, run_id=RUN)
            replay = day_outcome(*book_before_first_step(log, RiskLimits()))[0]
            report = daily_report(con, day, str(RUN))["day_figures"]
            for name in DAY_FIGURE_NAMES:
                for surface, value in (("replay", getattr(replay, name)), ("report daily", report[name]),
                                       ("GET /pnl/daily", api[day][name])):
                    _agree(name, row[name], value, f"{day} pnl_daily vs {surface}")
            traded += row["realized_pnl"] != 0
        assert traded >= 2  # days with closed trades were compared, not only flat ones
        last = max(rows)
        risk = client.get(f"/risk/metrics?run_id={RUN}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert risk["day"] == last.isoformat()
        assert daily_report(con, last, str(RUN))["risk_analysis"]["risk_score"] == risk["risk_score"]
        assert rows[last]["risk_score"] == risk["risk_score"]
    finally:
        store.close()
        con.close()


def _cli(*args: str, env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_commands_print_the_same_day_figures(world):
    """The same comparison through the CLI as a user runs it, on the days with the most going on."""
    url, path = world
    con = runner.open_readmodel(path)
    try:
        days = [d for (d,) in con.execute(
            "SELECT day FROM pnl_daily WHERE run_id = ? ORDER BY abs(day_pnl) DESC, day LIMIT 2", [str(RUN)]).fetchall()]
        rows = {d: dict(zip(DAY_FIGURE_NAMES, r)) for d, *r in con.execute(
            f"SELECT day, {', '.join(DAY_FIGURE_NAMES)} FROM pnl_daily WHERE run_id = ?", [str(RUN)]).fetchall()}
    finally:
        con.close()
    env = {"READMODEL__PATH": str(path)}
    for day in days:
        replay = _cli("replay", "--date", day.isoformat(), "--run", str(RUN), "--json", "--store", url, env=env)
        report = _cli("report", "daily", "--date", day.isoformat(), "--run", str(RUN), "--json", "--store", url,
                      "--reports-dir", str(path.parent / "reports"), env=env)
        for name in DAY_FIGURE_NAMES:
            _agree(name, rows[day][name], replay["day_figures"][name], f"{day} replay --json")
            _agree(name, rows[day][name], report["day_figures"][name], f"{day} report daily --json")
