"""The candles shipped with the package, so a backtest and the demo run without a download.

``data/coinbase_btcusd_1h.csv.gz`` holds Coinbase BTC-USD hourly candles in CryptoDataDownload's CSV
layout, banner line and newest-first rows included, so the demo exercises the real import path
(see ``data/README.md`` for its source, range and checksum).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from domain.product import ProductSpec

__all__ = ["BUNDLED_SPEC", "bundled_candles_path"]

BUNDLED_SPEC = ProductSpec.for_product("BTC-USD", Decimal("0.01"), Decimal("0.00000001"), Decimal("0.00000001"),
                                       Decimal("1"), source="venue")
"""Coinbase's listing of BTC-USD (price step, size step, minimum size and funds), recorded with the bundled set."""


def bundled_candles_path() -> Path:
    """The Coinbase BTC-USD hourly candles shipped with the package (CryptoDataDownload CSV, gzip)."""
    return Path(__file__).parent / "data" / "coinbase_btcusd_1h.csv.gz"
