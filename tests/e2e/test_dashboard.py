"""The dashboard page in headless Chromium, over a backtest's read model served by a read node."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.http.server import start_read_node
from tests.integration.test_api import TOKENS, api_settings, backtest_read_model

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def read_node(tmp_path):
    url, path = backtest_read_model(tmp_path, "2018-01-01", "2018-01-21")
    node = start_read_node(url, api_settings(), "127.0.0.1", 0, readmodel_path=str(path))
    yield node
    node.stop()


def test_dashboard_shows_the_equity_curve_positions_and_decisions_with_real_values(read_node, chromium_browser, tmp_path):
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{read_node.url}/#token={TOKENS['operator']}")
    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)

    assert "#token" not in page.url  # the token leaves the address bar at once
    assert page.text_content("#health").strip() == "health: healthy"
    points = int(page.get_attribute("#equity-chart", "data-points"))
    assert points > 100
    assert len(page.get_attribute("#equity-chart polyline", "points").split()) == points
    equity = page.text_content("#equity").replace(",", "")
    assert float(equity) > 0
    positions = page.locator("#positions tbody tr")
    assert positions.count() >= 1 and "BTC-USD" in positions.first.text_content()
    decisions = page.locator("#decisions tbody tr")
    assert decisions.count() >= 3
    assert any(word in decisions.first.text_content() for word in ("LONG", "SHORT", "CLOSE"))
    assert "signal" in decisions.first.text_content() or "stop" in decisions.first.text_content().lower()
    assert page.locator("#events tbody tr").count() == 12
    gauge = page.text_content("#loss-gauge-text").strip()
    assert gauge.endswith("%") and " / 3.00%" in gauge  # the loss against the limit, not the share of the limit
    risk = page.evaluate("fetch('/risk/metrics', {headers: {Authorization: 'Bearer ' + localStorage.getItem('tradecore.token')}}).then(r => r.json())")
    days = page.evaluate("fetch('/pnl/daily?limit=1000', {headers: {Authorization: 'Bearer ' + localStorage.getItem('tradecore.token')}}).then(r => r.json())")
    assert risk["run"] is not None and days["items"], (risk, days)
    last = days["items"][-1]
    shown = float(page.text_content("#daily-pnl").replace(",", ""))
    assert abs(shown - float(last["day_pnl"])) < 0.006  # the card shows day_pnl
    assert errors == []

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_dashboard_asks_for_a_token_when_it_has_none(read_node, chromium_browser):
    page = chromium_browser.new_page()
    page.goto(read_node.url + "/")
    page.wait_for_selector("#token-panel:not([hidden])", timeout=15_000)
    page.fill("#token-input", TOKENS["viewer"])
    page.click("#token-form button")
    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
    assert "auditor" in page.locator("#events tbody").text_content()  # a viewer may not page the event log


def test_the_bot_switcher_scopes_the_views_to_one_bot(read_node, chromium_browser):
    """Two paper bots beside the backtest: the switcher lists them (GET /bots) and ?bot= scopes the run views."""
    import time
    import uuid
    from datetime import datetime, timezone
    from decimal import Decimal

    from domain.control import Run, RunMode
    from domain.events import EventMeta
    from tests.support.recording import record

    for bot, product in (("paper-btc-usd", "BTC-USD"), ("eth-probation", "ETH-USD")):
        run_id = uuid.uuid4()
        record(read_node.store, Run.begin(run_id, EventMeta(datetime(2018, 1, 22, tzinfo=timezone.utc), "system", run_id,
                                                              None, run_id),
                                          mode=RunMode.PAPER, product=product, granularity="1h", strategy="rules",
                                          config_hash="h", code_version="t", initial_balance=Decimal(1000), bot_id=bot))
    deadline = time.monotonic() + 15
    while read_node.access.scalar("SELECT count(*) FROM runs WHERE mode = 'paper'") != 2:
        assert time.monotonic() < deadline, "the read node did not follow the log"
        time.sleep(0.1)
    page = chromium_browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{read_node.url}/#token={TOKENS['viewer']}")
    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
    options = page.locator("#bot option").all_text_contents()
    assert options[0].startswith("latest run") and any(o.startswith("eth-probation · paper ETH-USD") for o in options)
    page.select_option("#bot", "eth-probation")
    page.wait_for_function("document.getElementById('run').textContent.includes('eth-probation')", timeout=15_000)
    assert "bot=eth-probation" in page.url and "ETH-USD" in page.text_content("#run")
    page.reload()  # the choice is in the address: a shared link shows the same bot
    page.wait_for_function("document.getElementById('run').textContent.includes('eth-probation')", timeout=15_000)
    assert page.input_value("#bot") == "eth-probation"
    assert errors == []
