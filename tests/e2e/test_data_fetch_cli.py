"""`tradecore data fetch` downloads Coinbase candles (public endpoint, no keys) into the log, paged."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from api.bootstrap import open_store
from domain.market import Candle
from tests.support.coinbase_standin import CoinbaseStandIn

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, granularity="1h").start()
    hours = []
    for i in range(24 * 30):
        if i == 100:
            continue  # an hour without trades: the venue lists no candle
        p = Decimal(20000 + i)
        hours.append(Candle("BTC-USD", "1h", T0 + timedelta(hours=i), p, p + 5, p - 5, p + 1, Decimal("1.5")))
    s.set_history(hours)
    s.hours = hours
    yield s
    s.stop()


def fetch(stand, url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE__")}
    env.update({"EXCHANGE__BASE_URL": stand.base_url, "EXCHANGE__CA_BUNDLE": str(stand.ca_file)})  # no keys
    return subprocess.run([sys.executable, "-m", "api.cli", "data", "fetch", "--store", url, *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_fetch_pages_within_the_venue_limit_records_candles_once_and_needs_no_keys(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    result = fetch(stand, url, "--product", "BTC-USD", "--granularity", "1h", "--from", "2026-01-01", "--to", "2026-01-30")
    assert result.returncode == 0, result.stderr
    candle_requests = [s for _, p, s in stand.requests if p.endswith("/candles")]
    assert candle_requests == [200, 200, 200]  # 720 hours in pages of at most 350
    assert not any("/brokerage/orders" in p or "/accounts" in p for _, p, _ in stand.requests)
    assert "719 recorded" in result.stdout and "1 bucket(s) without trades" in result.stdout
    assert "spec recorded" in result.stdout  # the product endpoint's increments and minimums, asked once
    app = open_store(url)
    try:
        closed = [e.event for e in app.iter_log() if type(e.event).__name__ == "CandleClosed"]
        from application.trading.products import recorded_spec

        spec = recorded_spec(app, "BTC-USD")
    finally:
        app.close()
    assert spec is not None and spec.quote_increment == Decimal("0.01") and spec.min_quote_funds == Decimal(1)
    assert len(closed) == 719
    assert closed[0].start == T0 and closed[0].close == Decimal(20001)
    assert all(e.actor == "data-fetch" for e in closed)
    again = fetch(stand, url, "--from", "2026-01-01", "--to", "2026-01-30", "--granularity", "1h")
    assert again.returncode == 0 and "0 recorded, 719 already in the log" in again.stdout


def test_fetch_refuses_a_candle_that_differs_from_the_recorded_one(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert fetch(stand, url, "--from", "2026-01-01", "--to", "2026-01-01").returncode == 0
    first = stand.hours[0]
    stand.candles[first.start] = Candle("BTC-USD", "1h", first.start, first.open, first.high, first.low,
                                        first.close + 1, first.volume)
    result = fetch(stand, url, "--from", "2026-01-01", "--to", "2026-01-01")
    assert result.returncode == 1 and "refused" in result.stdout
    corrected = fetch(stand, url, "--from", "2026-01-01", "--to", "2026-01-01", "--corrections")
    assert corrected.returncode == 0 and "1 corrected" in corrected.stdout


def test_fetch_with_bad_dates_says_what_is_wrong(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    result = fetch(stand, url, "--from", "2026-02-01", "--to", "2026-01-01")
    assert result.returncode == 2 and "is not before" in result.stderr
    result = fetch(stand, url, "--from", "yesterday", "--to", "2026-01-01")
    assert result.returncode == 2 and "--from" in result.stderr
