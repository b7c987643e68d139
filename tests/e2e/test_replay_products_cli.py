"""`tradecore replay --verify` of a run on a sub-cent product and on a BTC-quoted one: the re-execution trades
by the run's product spec (its price grid and quote currency), so it reproduces the recorded orders and fills.

The candles are the bundled BTC-USD hours of late 2018 scaled into shapes the bundled data lacks: prices of
about 0.0037 USD (XLM-USD style) and about 0.037 BTC (ETH-BTC style), on an 8-decimal grid. No spec is set or
recorded: the run and the replay both read it off the candles (the warning says so).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from infrastructure.candles.files import bundled_candles_path, read_candle_file
from tests.e2e.test_replay_cli import cli

DAY = "2019-01-04"  # the BTC-USD shape of these days trades on it
GRID = Decimal("0.00000001")


def scaled_csv(path: Path, divisor: int) -> Path:
    frame = read_candle_file(bundled_candles_path()).frame
    frame = frame[(frame.index >= "2018-12-20") & (frame.index < "2019-01-09")]
    rows = ["time,open,high,low,close,volume"]
    for start, row in frame.iterrows():
        prices = [(Decimal(str(row[c])) / divisor).quantize(GRID) for c in ("open", "high", "low", "close")]
        rows.append(f"{start:%Y-%m-%dT%H:%M:%SZ},{','.join(map(str, prices))},{Decimal(str(row['volume'])) * divisor}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(("product", "divisor"), [("XLM-USD", 1_000_000), ("ETH-BTC", 100_000)])
def test_verify_reproduces_a_run_on_its_own_price_grid(tmp_path, product, divisor):
    url = f"sqlite:///{tmp_path}/events.db"
    data = scaled_csv(tmp_path / "candles.csv", divisor)
    done = cli("backtest", "--data", str(data), "--product", product, "--granularity", "1h", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["fills"] > 2 and summary["quote_currency"] == product.split("-")[1]

    verified = cli("replay", "--date", DAY, "--verify", "--store", url, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["identical"] is True, report
    assert report["recorded_fills"] >= 1 and report["replayed_fills"] == report["recorded_fills"], report
