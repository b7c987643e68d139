"""Backtests of products other than BTC-USD through the CLI, over candles the test writes (no network):
a sub-cent product on 1-minute candles and a BTC-quoted pair with its spec from the settings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "READMODEL__", "RISK__", "TRADING__"))}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=run_env)


def wavy_csv(path: Path, count: int, step: timedelta, price: float, places: int) -> Path:
    """Prices that swing (so the rules strategy trades), written to ``places`` decimals."""
    rows = ["time,open,high,low,close,volume"]
    previous = price
    for i in range(count):
        close = price * (1 + 0.06 * math.sin(i / 14) + 0.02 * math.sin(i / 3))
        high, low = max(previous, close) * 1.002, min(previous, close) * 0.998
        rows.append(f"{(T0 + step * i).strftime('%Y-%m-%dT%H:%M:%SZ')},{previous:.{places}f},{high:.{places}f},"
                    f"{low:.{places}f},{close:.{places}f},{1000 + i}")
        previous = close
    path.write_text("\n".join(rows) + "\n")
    return path


def events(store: str, kind: str) -> list[dict]:
    out = cli("events", "--store", store, "--type", kind, "--json", "--limit", "100000").stdout
    return [json.loads(line)["payload"] for line in out.splitlines()]


def on_grid(value: str | None, step: Decimal) -> bool:
    return value is None or Decimal(value) % step == 0


def test_sub_cent_product_on_one_minute_candles_trades_with_protective_prices_on_its_grid(tmp_path):
    store = f"sqlite:///{tmp_path / 'xlm.db'}"
    data = wavy_csv(tmp_path / "xlm.csv", 900, timedelta(minutes=1), 0.0016, 7)
    result = cli("backtest", "--data", str(data), "--product", "XLM-USD", "--granularity", "1m",
                 "--initial-balance", "1000", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    assert "no spec for XLM-USD" in result.stderr and "prices step by 0.0000001 USD" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["quote_currency"] == "USD" and summary["candles"] == 900 and summary["fills"] > 0
    placed = [p for p in events(store, "OrderPlaced") if p["stop_loss_price"]]
    assert placed, "the rules strategy entered at least once"
    for order in placed:
        stop, target = Decimal(order["stop_loss_price"]), Decimal(order["take_profit_price"])
        assert Decimal("0") < stop < Decimal("0.002") and on_grid(order["stop_loss_price"], Decimal("0.0000001"))
        assert on_grid(order["take_profit_price"], Decimal("0.0000001")) and target > stop
    assert [e for e in events(store, "RunEnded")][0]["status"] == "completed"
    shown = cli("data", "show", "--product", "XLM-USD", "--granularity", "1m", "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert "the log holds 900 XLM-USD 1m candles from 2024-03-01T00:00:00+00:00" in shown.stdout and "0 gap(s)" in shown.stdout
    assert "spec: none recorded" in shown.stdout  # an inferred spec is a warning, not a fact for the log


def test_btc_quoted_pair_trades_in_btc_with_the_settings_spec(tmp_path):
    store = f"sqlite:///{tmp_path / 'ethbtc.db'}"
    config = tmp_path / "tradecore.toml"
    config.write_text('[products."ETH-BTC"]\nquote_increment = "0.00001"\nbase_increment = "0.00000001"\n'
                      'min_base_size = "0.00022"\nmin_quote_funds = "0.000016"\n\n[risk]\nmin_balance = "0.01"\n')
    data = wavy_csv(tmp_path / "ethbtc.csv", 24 * 25, timedelta(hours=1), 0.05123, 5)
    result = cli("backtest", "--data", str(data), "--product", "ETH-BTC", "--granularity", "1h", "--config", str(config),
                 "--initial-balance", "1", "--store", store, "--json")
    assert result.returncode == 0, result.stderr
    assert "no spec" not in result.stderr  # the settings' table is the spec
    summary = json.loads(result.stdout)
    assert summary["quote_currency"] == "BTC" and summary["initial_equity"] == "1" and summary["fills"] > 0
    assert summary["rejected"] == 0  # nothing refused as "not quoted in USD"
    assert {p["currency"] for p in events(store, "FundsDeposited")} == {"BTC"}
    fills = events(store, "OrderFilled") + events(store, "OrderPartiallyFilled")
    assert fills and {f["fee_currency"] for f in fills} == {"BTC"}
    assert all(on_grid(f["price"], Decimal("0.00001")) and on_grid(f["quantity"], Decimal("0.00000001")) for f in fills)
