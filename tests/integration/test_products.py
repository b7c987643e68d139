"""Products as the venue defines them: a sub-cent product (0.0016, 1-minute candles the test writes)
and a BTC-quoted pair (ETH-BTC); specs from the Coinbase stand-in, the settings, or the candles."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest

from api.bootstrap import coinbase_client, open_store
from application.ports import OrderRequest, ReportKind
from application.trading.candle_history import import_candles, logged_candles
from application.trading.products import product_spec_for, record_spec, recorded_spec
from domain.events import EventMeta
from domain.order import OrderSide, OrderType
from domain.product import ProductSpec, protective_rounding, round_price
from infrastructure.candles.files import read_candle_file
from infrastructure.settings.loading import load_settings
from infrastructure.venues.paper.exchange import PaperExchange
from tests.support.coinbase_standin import CoinbaseStandIn

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
XLM = ProductSpec.for_product("XLM-USD", D("0.000001"), D("1"), D("1"), D("1"))
ETH_BTC = ProductSpec.for_product("ETH-BTC", D("0.00001"), D("0.00000001"), D("0.00022"), D("0.000016"))


def sub_cent_csv(path: Path, minutes: int = 180) -> Path:
    rows = ["time,open,high,low,close,volume"]
    for i in range(minutes):
        close = D("0.0016") + D(i % 9 - 4) * D("0.0000037")
        rows.append(f"{(T0 + timedelta(minutes=i)).strftime('%Y-%m-%dT%H:%M:%SZ')},{close - D('0.000001')},"
                    f"{close + D('0.000004')},{close - D('0.000003')},{close},{250000 + i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def request(product: str, side: OrderSide, quantity: str) -> OrderRequest:
    order_id = uuid.uuid4()
    return OrderRequest(order_id, f"c-{order_id.hex[:8]}", product, side, OrderType.MARKET, D(quantity))


def test_sub_cent_candles_keep_their_digits_and_the_spec_is_inferred_with_a_warning(tmp_path):
    parsed = read_candle_file(sub_cent_csv(tmp_path / "xlm.csv"), granularity="1m")
    from application.trading.backtest import candles_of

    candles = candles_of(parsed.frame, "XLM-USD", "1m")
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    import_candles(store, candles, EventMeta(candles[-1].end, actor="import"))
    logged = logged_candles(store, "XLM-USD", "1m")
    assert logged.count == 180 and logged.candles[0].close == D("0.0015852")  # no cents anywhere
    spec, warning = product_spec_for(store, load_settings(env={}), "XLM-USD", logged.candles)
    assert spec.quote_increment == D("0.0000001") and spec.quote_currency == "USD" and spec.source == "inferred"
    assert "no spec for XLM-USD" in warning and "tradecore data product XLM-USD" in warning
    stop = round_price(D("0.0016") * D("0.98"), spec, protective_rounding(True, "stop_loss"))
    assert stop == D("0.0015680") and stop > 0
    store.close()


def test_settings_table_wins_then_the_recorded_spec_then_inference(tmp_path):
    config = tmp_path / "tradecore.toml"
    config.write_text('[products."XLM-USD"]\nquote_increment = "0.000001"\nbase_increment = "1"\nmin_base_size = "1"\n'
                      'min_quote_funds = "1"\n')
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    from_settings, warning = product_spec_for(store, load_settings(config_file=config, env={}), "XLM-USD")
    assert warning is None and from_settings == ProductSpec.for_product("XLM-USD", D("0.000001"), D("1"), D("1"), D("1"),
                                                                         source="settings")
    assert record_spec(store, ETH_BTC, EventMeta(T0, actor="test")) is True
    assert record_spec(store, ETH_BTC, EventMeta(T0, actor="test")) is False  # the same spec again: nothing new
    recorded, warning = product_spec_for(store, load_settings(env={}), "ETH-BTC")
    assert recorded == ETH_BTC and warning is None
    with pytest.raises(ValueError, match="BASE-QUOTE"):
        product_spec_for(store, load_settings(env={}), "eth-btc")
    store.close()


def test_paper_exchange_trades_a_sub_cent_product_by_its_spec():
    exchange = PaperExchange(slippage_bps=D(5))
    exchange.trade_by(XLM)
    exchange.deposit("USD", D("100"))
    accepted, fill = exchange.submit(request("XLM-USD", OrderSide.BUY, "1000"), D("0.0016"), T0)
    assert accepted.kind is ReportKind.ACCEPTED and fill.kind is ReportKind.FILL
    assert fill.price == D("0.001601")  # 0.0016 + 5 bps, rounded against the taker to 0.000001, not to cents
    assert fill.fee_currency == "USD" and fill.fee == D("0.00960600")
    assert exchange.balance("XLM") == D("1000") and exchange.balance("USD") == D("100") - D("1.601") - fill.fee
    (below,) = exchange.submit(request("XLM-USD", OrderSide.BUY, "300"), D("0.0016"), T0)
    assert below.kind is ReportKind.REJECTED and "min_quote_funds" in below.reason
    (off_grid,) = exchange.submit(request("XLM-USD", OrderSide.BUY, "1000.5"), D("0.0016"), T0)
    assert off_grid.kind is ReportKind.REJECTED and "not a multiple of 1" in off_grid.reason


def test_paper_exchange_trades_a_btc_quoted_pair_in_btc():
    exchange = PaperExchange(slippage_bps=D(0))
    exchange.trade_by(ETH_BTC)
    exchange.deposit("BTC", D("1"))
    _, fill = exchange.submit(request("ETH-BTC", OrderSide.BUY, "2"), D("0.05123"), T0)
    assert fill.kind is ReportKind.FILL and fill.price == D("0.05123") and fill.fee_currency == "BTC"
    assert exchange.balance("ETH") == D("2") and exchange.balance("BTC") == D("1") - D("0.10246") - fill.fee
    (small,) = exchange.submit(request("ETH-BTC", OrderSide.BUY, "0.0001"), D("0.05123"), T0)
    assert small.kind is ReportKind.REJECTED and "min_base_size" in small.reason and "ETH" in small.reason


@pytest.fixture
def stand(tmp_path):
    s = CoinbaseStandIn(tmp_path, product="ETH-BTC", granularity="1h").start()
    s.product_specs["ETH-BTC"] = {"price_increment": "0.00001", "quote_increment": "0.00000001",
                                  "base_increment": "0.00000001", "base_min_size": "0.00022", "quote_min_size": "0.000016"}
    yield s
    s.stop()


def test_the_venue_spec_comes_from_the_product_endpoint_and_is_recorded(stand, tmp_path):
    settings = load_settings(env={"EXCHANGE__BASE_URL": stand.base_url, "EXCHANGE__CA_BUNDLE": str(stand.ca_file)})
    assert coinbase_client(settings, authenticated=False).product_spec("ETH-BTC") == ETH_BTC
    url = f"sqlite:///{tmp_path / 'e.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE__", "EVENTSTORE__"))}
    env.update({"EXCHANGE__BASE_URL": stand.base_url, "EXCHANGE__CA_BUNDLE": str(stand.ca_file)})
    done = subprocess.run([sys.executable, "-m", "api.cli", "data", "product", "ETH-BTC", "--store", url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "price step 0.00001 BTC" in done.stdout and "minimum size 0.00022 ETH" in done.stdout and "recorded" in done.stdout
    unknown = subprocess.run([sys.executable, "-m", "api.cli", "data", "product", "NOPE-USD", "--store", url], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=env)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr and "NOPE-USD" in unknown.stderr
    store = open_store(url)
    assert recorded_spec(store, "ETH-BTC") == ETH_BTC
    store.close()


def test_a_paper_or_live_run_takes_the_venues_spec_and_records_it(stand, tmp_path):
    settings = load_settings(env={"EXCHANGE__BASE_URL": stand.base_url, "EXCHANGE__CA_BUNDLE": str(stand.ca_file)})
    client = coinbase_client(settings, authenticated=False)
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    spec, warning = product_spec_for(store, settings, "ETH-BTC", venue=client.product_spec, at=T0)
    assert spec == ETH_BTC and warning is None and recorded_spec(store, "ETH-BTC") == ETH_BTC
    stand.product_specs.clear()  # the venue no longer answers for it: the recorded spec serves, and says so
    again, warning = product_spec_for(store, settings, "ETH-BTC", venue=client.product_spec, at=T0)
    assert again == ETH_BTC and "was not reached" in warning and "recorded earlier" in warning
    store.close()


def test_without_a_spec_a_price_too_fine_for_the_default_grid_is_refused_not_filled_at_cents():
    exchange = PaperExchange()
    (refused,) = exchange.submit(request("XLM-USD", OrderSide.BUY, "1000"), D("0.0016"), T0)
    assert refused.kind is ReportKind.REJECTED and "no product spec for XLM-USD" in refused.reason
    _, fill = exchange.submit(request("BTC-EUR", OrderSide.BUY, "0.01"), D("41000.12"), T0)
    assert fill.kind is ReportKind.FILL and fill.fee_currency == "EUR"  # the quote of its id
