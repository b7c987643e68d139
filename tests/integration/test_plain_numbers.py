"""Numbers leave as people write them: `query` table, CSV and JSON, and the replay page (no 0E-18, no False)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

from api.bootstrap import decision_model, loop_settings, open_store, paper_exchange, risk_limits
from application.replay.timeline import build_timeline, load_day
from application.trading.backtest import run_backtest
from infrastructure.candles.files import bundled_candles_path, read_candle_file
from infrastructure.settings.loading import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXPONENT = re.compile(r"\d[eE][-+]?\d")
SQL = ("SELECT CAST(0 AS DECIMAL(38,18)) AS zero, CAST('0.00000001' AS DECIMAL(38,18)) AS tiny, "
       "CAST('1500' AS DECIMAL(38,8)) AS round, 1e-05 AS small_double, true AS flag, NULL AS nothing")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__"))}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=run_env)


def test_query_csv_json_and_table_write_decimals_plainly(tmp_path):
    store, env = f"sqlite:///{tmp_path / 'events.db'}", {"READMODEL__PATH": str(tmp_path / "readmodel.duckdb")}
    open_store(store).close()  # an empty log: query reads an empty read model
    as_csv = cli("query", SQL, "--format", "csv", "--store", store, env=env)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[1] == ["0", "0.00000001", "1500", "0.00001", "true", ""]
    as_json = cli("query", SQL, "--format", "json", "--store", store, env=env)
    assert json.loads(as_json.stdout)["zero"] == "0" and json.loads(as_json.stdout)["tiny"] == "0.00000001"
    table = cli("query", SQL, "--store", store, env=env)
    assert table.returncode == 0 and "0.00000001" in table.stdout and "1500" in table.stdout
    for output in (as_csv.stdout, table.stdout):  # JSON keeps a DOUBLE a JSON number (1e-05 is valid JSON)
        assert not EXPONENT.search(output) and "0E-" not in output
    assert "0E-" not in as_json.stdout


def test_replay_page_writes_figures_plainly_and_booleans_as_words(tmp_path):
    from api.pages.replay import render_page

    frame = read_candle_file(bundled_candles_path()).frame
    frame = frame[(frame.index >= "2019-01-01") & (frame.index < "2019-01-25")]
    settings = load_settings(env={})
    url = f"sqlite:///{tmp_path / 'events.db'}"
    app = open_store(url)
    try:
        run_backtest(app, frame, exchange=paper_exchange(settings), strategy=decision_model(settings),
                     settings=loop_settings(settings, flush_every=250), initial_balance=Decimal(10000),
                     config_hash="t", code_version="t", run_id=uuid.UUID(int=99))
        from datetime import date

        page = render_page(build_timeline(load_day(app, date(2019, 1, 21)), risk_limits(settings)))
    finally:
        app.close()
    assert "HALT" in page  # the day has a halt and trades, so every kind of figure is on it
    assert re.search(r"halted (yes|no)\b", page) and "halted False" not in page and "halted True" not in page
    text = re.sub(r"<[^>]+>", " ", page.split("<style>")[0] + page.split("</style>")[-1].split("<script>")[0])
    assert not EXPONENT.search(text), EXPONENT.search(text)
    assert "None" not in text and "=True" not in text and "=False" not in text
    text_replay = cli("replay", "--date", "2019-01-21", "--store", url)
    assert text_replay.returncode == 0, text_replay.stderr
    assert "position_quantity=0 " in text_replay.stdout or "position_quantity=0\n" in text_replay.stdout
    assert "0E-" not in text_replay.stdout
    assert "=True" not in text_replay.stdout and "=False" not in text_replay.stdout  # flags as words
