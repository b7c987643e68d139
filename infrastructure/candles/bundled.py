"""The candles shipped with the package, so a backtest and the demo run without a download.

``data/coinbase_btcusd_1h.csv.gz`` holds Coinbase BTC-USD hourly candles in CryptoDataDownload's CSV
layout, banner line and newest-first rows included, so the demo exercises the real import path
(see ``data/README.md`` for its source, range and checksum).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_candles_path"]


def bundled_candles_path() -> Path:
    """The Coinbase BTC-USD hourly candles shipped with the package (CryptoDataDownload CSV, gzip)."""
    return Path(__file__).parent / "data" / "coinbase_btcusd_1h.csv.gz"
