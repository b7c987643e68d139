"""`tradecore replay` through the real CLI: timeline, --at, --verify (and a tampered log), --what-if, --html."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAY = "2019-01-04"  # the run closes a position and opens another that day


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "TRADING__", "RISK__", "EXCHANGE__"))}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("replay_cli") / "events.db"
    url = f"sqlite:///{path}"
    done = cli("backtest", "--bundled", "--from", "2019-01-01", "--to", "2019-01-08", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["fills"] > 2
    return url


def test_timeline_json_has_every_step_with_the_state_after_it(store):
    done = cli("replay", "--date", DAY, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    types = [e["type"] for e in data["events"]]
    for kind in ("CandleClosed", "DecisionMade", "RiskAssessed", "OrderPlaced", "OrderFilled"):
        assert kind in types
    assert all(e["at"].startswith(DAY) and e["state"] is not None for e in data["events"])
    fill = next(e for e in data["events"] if e["type"] == "OrderFilled")
    assert {"position", "realized_pnl", "unrealized_pnl", "daily_loss_used_pct", "daily_loss_limit_pct",
            "config_hash"} <= set(fill["state"])
    assert data["run"]["mode"] == "backtest" and "matches the run's RunStarted" in data["config_note"]


def test_text_timeline_window_and_state_at_an_instant(store):
    done = cli("replay", "--date", DAY, "--from", "09:00", "--to", "10:00", "--store", store)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "09:00:00" in out and "10:00:00" in out and "11:00:00" not in out and "08:00:00" not in out
    assert "state: position" in out and "daily loss" in out
    assert "day: " in out and "trade(s) closed" in out
    brief = cli("replay", "--date", DAY, "--brief", "--json", "--store", store)
    types = {e["type"] for e in json.loads(brief.stdout)["events"]}
    assert "CandleClosed" not in types and "OrderFilled" in types
    assert json.loads(brief.stdout)["day_figures"]["fills"] >= 2
    at = cli("replay", "--date", DAY, "--at", "12:00", "--store", store, "--json")
    assert at.returncode == 0, at.stderr
    state = json.loads(at.stdout)
    assert state["at"].startswith(f"{DAY}T12:00") and state["last_event"]["at"] <= state["at"]
    assert state["limits"]["max_daily_loss_pct"] == "3"


def test_verify_is_identical_and_a_tampered_fill_is_named(store, tmp_path):
    ok = cli("replay", "--date", DAY, "--verify", "--store", store)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "identical" in ok.stdout
    tampered = tmp_path / "tampered.db"
    with sqlite3.connect(store.removeprefix("sqlite:///")) as source, sqlite3.connect(tampered) as target:
        source.backup(target)
    with sqlite3.connect(tampered) as con:
        rowid, state = con.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE '%:OrderFilled' "
                                   "AND CAST(state AS TEXT) LIKE ? ORDER BY rowid LIMIT 1", (f'%"occurred_at":"{DAY}%',)).fetchone()
        record = json.loads(state)
        recorded_price = record["price"]
        record["price"] = "1234.56"
        con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (json.dumps(record).encode(), rowid))
    bad = cli("replay", "--date", DAY, "--verify", "--store", f"sqlite:///{tampered}", "--json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    result = json.loads(bad.stdout)
    assert any("hash chain is BROKEN" in note for note in result["notes"])
    divergence = result["divergence"]
    assert divergence["field"] == "price"
    assert divergence["recorded"] == "1234.56" and divergence["replayed"] == recorded_price
    assert divergence["event"].startswith(f"OrderFilled #{rowid}")


def test_what_if_prints_recorded_beside_what_if_and_a_bad_key_exits_2(store, tmp_path):
    good = tmp_path / "cheaper.toml"
    good.write_text('[exchange]\ntaker_fee_bps = 10\n[risk]\nmax_daily_loss_pct = 1\n[llm]\napi_key = "sk-replay-secret-0123456789"\n')
    done = cli("replay", "--date", DAY, "--what-if", str(good), "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert float(report["what_if"]["fees"]) < float(report["recorded"]["fees"])
    assert report["changed_settings"]["exchange.taker_fee_bps"] == {"recorded": "60", "what_if": "10"}
    assert report["changed_settings"]["llm.api_key"] == {"recorded": "unset", "what_if": "set"}
    assert "sk-replay-secret" not in done.stdout + done.stderr
    text = cli("replay", "--date", DAY, "--what-if", str(good), "--store", store)
    assert "recorded vs what-if" in text.stdout and "not written" in text.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_daily_los_pct = 1\n")
    refused = cli("replay", "--date", DAY, "--what-if", str(bad), "--store", store)
    assert refused.returncode == 2
    assert "risk.max_daily_los_pct" in refused.stderr


def test_bad_input_exits_2_with_the_reason(store):
    bad_date = cli("replay", "--date", "2019-13-01", "--store", store)
    assert bad_date.returncode == 2 and "--date" in bad_date.stderr
    empty = cli("replay", "--date", "2016-01-01", "--store", store)  # before the bundled candles
    assert empty.returncode == 2 and "nothing was recorded" in empty.stderr
    bad_run = cli("replay", "--date", DAY, "--run", "not-a-uuid", "--store", store)
    assert bad_run.returncode == 2 and "--run" in bad_run.stderr


def test_html_page_shows_the_chart_markers_and_rationale_in_headless_chromium(store, tmp_path, chromium_browser):
    page_file = tmp_path / "day.html"
    done = cli("replay", "--date", DAY, "--store", store, "--html", str(page_file))
    assert done.returncode == 0, done.stderr
    text = page_file.read_text()
    assert "<script src" not in text and "http://" not in text and "https://" not in text
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(page_file.as_uri())
    assert page.locator("#chart #candles .candle").count() == 24
    decisions = page.locator("#markers .marker.decision")
    assert decisions.count() >= 2
    assert page.locator("#markers .marker.order").count() >= 2
    assert page.locator("#markers .marker.fill").count() >= 2
    assert page.locator("#pnl path.pnl-line").count() == 1 and page.locator("#daily-loss .limit-line").count() == 1
    decisions.first.hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and "rationale:" in tip.inner_text()
    assert page.locator("#events tbody tr").count() > 50
    shot = tmp_path / "replay.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_operator_halts_incidents_and_config_changes_of_today_show_in_the_timeline(tmp_path):
    store = f"sqlite:///{tmp_path}/ops.db"
    for args in (("incident", "open", "--severity", "P0", "--kind", "exchange-outage", "--details", "venue 502s",
                  "--actor", "operator:alice"),
                 ("config", "set", "risk.max_daily_loss_pct", "2", "--reason", "tighten during the outage"),
                 ("resume", "--reason", "venue back", "--actor", "operator:alice")):
        done = cli(*args, "--store", store)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    events = cli("events", "--store", store, "--json", "--limit", "100")
    day = json.loads(events.stdout.splitlines()[0])["occurred_at"][:10]
    done = cli("replay", "--date", day, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["run"] is None
    types = [e["type"] for e in data["events"]]
    for kind in ("IncidentOpened", "TradingHalted", "CancelAllRequested", "ConfigChanged", "TradingResumed"):
        assert kind in types, types
    halt = next(e for e in data["events"] if e["type"] == "TradingHalted")
    assert halt["actor"] == "operator:alice" and halt["state"]["open_incidents"] == 1
    assert halt["state"]["halted"] is True and data["end_state"]["halted"] is False
    text = cli("replay", "--date", day, "--store", store)
    assert "INCIDENT P0 exchange-outage" in text.stdout and "config risk.max_daily_loss_pct" in text.stdout
