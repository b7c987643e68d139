"""Read OHLCV candle files (CSV, gzipped CSV, Parquet) into validated, exact-decimal candles.

Used by ``tradecore data import FILE`` and by the backtest's ``--data FILE`` / ``--bundled``. This is
the entry point; the parts live beside it:

* :mod:`infrastructure.candles.formats`: the accepted formats, columns and time notations, and how
  each file becomes rows of text;
* :mod:`infrastructure.candles.validation`: which rows are candles (every rejected row names the
  field and value), duplicates and gaps;
* :mod:`infrastructure.candles.plain`: a plain CSV whose every row is a candle, read and validated
  without pandas (the same result; any other file takes the two above);
* :mod:`infrastructure.candles.bundled`: the candles shipped with the package.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from domain.market import GRANULARITIES
from infrastructure.candles.bundled import bundled_candles_path
from infrastructure.candles.formats import RejectedRow, read_rows
from infrastructure.candles.plain import read_plain_csv
from infrastructure.candles.validation import CandleFile, CandleGap, validate

__all__ = [
    "CandleFile",
    "CandleGap",
    "RejectedRow",
    "bundled_candles_path",
    "parse_granularity",
    "read_candle_file",
]


def parse_granularity(text: str) -> timedelta:
    """The bar length for a granularity such as ``"1h"``; ValueError for anything unsupported."""
    try:
        return GRANULARITIES[text.strip()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unsupported granularity {text!r}; expected one of {', '.join(GRANULARITIES)}"
        ) from None


def read_candle_file(
    path: Path, granularity: str = "1h", columns: Mapping[str, str] | None = None
) -> CandleFile:
    """Read and validate a candle file; see :mod:`infrastructure.candles.formats` for the formats.

    Raises
    ------
    ValueError
        For an unsupported granularity or file type, a column that is missing or ambiguous, a
        file without candle rows, or one that is not readable CSV, gzip or UTF-8 text (a field
        over 131,072 characters, random bytes). Bad rows are not errors: they come back in ``rejected``.
    """
    path = Path(path)
    step_us = parse_granularity(granularity) // timedelta(microseconds=1)
    plain = read_plain_csv(path, dict(columns or {}), step_us, granularity.strip())
    if plain is not None:  # a plain CSV whose every row is a candle: the same result without pandas
        return plain
    try:
        raw = read_rows(path, dict(columns or {}))
    except csv.Error as exc:  # e.g. a field over the csv module's 131,072-character limit
        raise ValueError(f"{path}: not a candle CSV file ({exc})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable gzip file ({exc}); give the plain CSV or a .gz written by gzip") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; a candle CSV is text (or gzipped text)") from None
    return validate(raw, step_us, granularity.strip())
