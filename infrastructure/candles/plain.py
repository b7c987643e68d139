"""A plain candle CSV read and validated without pandas: the common case, with the same result.

A file is plain when it has no quotes, one line ending throughout (``\n`` or ``\r\n``), every row after the header has the header's
number of fields, every time is in one strict notation (CryptoDataDownload's ``2019-10-17 09-AM``, ISO
``2024-03-01T10:00:00Z`` / ``2024-03-01 10:00:00`` / ``2024-03-01``, or whole epoch seconds or milliseconds)
and every value plain decimal digits (``8051``, ``0.25``), and when every row is a candle: aligned to the bar,
positive prices that bound each other, no start twice. For such a file :func:`read_plain_csv` gives exactly
what ``formats.read_rows`` + ``validation.validate`` give (tests/unit/test_candle_files.py compares the two);
for any other file it gives None and the general path (pandas) reads it, names every rejected row, and so on.

Why: importing pandas costs a short process (``tradecore backtest --bundled``) ~0.25 s of CPU.
"""

from __future__ import annotations

import gzip
import re
from itertools import repeat
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Mapping

import numpy as np

from infrastructure.candles.formats import LOGICAL_COLUMNS, PRICES, VALUES, _EPOCH_MS_THRESHOLD, _locate_header
from infrastructure.candles.validation import CandleFile, _check_bar_size, _gaps

__all__ = ["read_plain_csv"]

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_CDD = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2})-([AP])M")
_ISO = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?(?:Z|\+00:00)?)?")
_DIGITS = re.compile(r"[0-9]{1,15}")
_NUMBERS = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?\n)*[0-9]+(?:\.[0-9]+)?")  # each line a plain number
_DIGIT_LINES = re.compile(r"(?:[0-9]{1,15}\n)*[0-9]{1,15}")
_CDD_LINES = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}-[AP]M\n)*[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}-[AP]M")
_DAY_US = 86_400_000_000
_UNIX_DAY = date(1970, 1, 1).toordinal()


def read_plain_csv(path: Path, mapping: Mapping[str, str], step_us: int, granularity: str) -> CandleFile | None:
    """The validated candles of a plain CSV (see the module), or None for any other file.

    Raises the ValueError the general path raises for a file of another bar size than ``granularity``."""
    name = path.name.lower()
    if not name.endswith((".csv", ".csv.gz", ".gz", ".txt")) or set(mapping) - set(LOGICAL_COLUMNS):
        return None
    try:
        data = path.read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        if b'"' in data:
            return None
        crlf = data.count(b"\r\n")
        if data.count(b"\r") != crlf or crlf not in (0, data.count(b"\n")):  # one line ending throughout
            return None
        lines = data.decode("utf-8-sig").split("\r\n" if crlf else "\n")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile):  # UnicodeDecodeError, zlib.error: the general path says
        return None
    if lines and lines[-1] == "":
        lines.pop()
    head = [line.split(",") for line in lines[:2]]
    if not head or any(line == [""] for line in head):
        return None
    try:
        header_line, names, positions = _locate_header(head, dict(mapping), path)
    except ValueError:
        return None  # the general path names what is wrong
    width = len(names)
    rows = lines[header_line:]
    if not rows or set(map(str.count, rows, repeat(","))) != {width - 1}:
        return None
    fields = ",".join(rows).split(",")
    micros = _times(fields[positions["time"]::width])
    if micros is None:
        return None
    columns = {value: _numbers(fields[positions[value]::width]) for value in VALUES}
    if any(column is None for column in columns.values()):
        return None
    _check_bar_size(micros, step_us, granularity)  # a file of another bar size is refused, as by validate
    if not _all_candles(micros, step_us, columns):
        return None
    order = np.argsort(micros, kind="stable")
    starts = micros[order]
    values = {value: np.array(exact, dtype=object)[order] for value, (_, _, exact) in columns.items()}
    return CandleFile(starts, values, [], 0, _gaps(starts, step_us), len(rows))


def _numbers(texts: list[str]) -> tuple[list[str], np.ndarray, list[Decimal]] | None:
    """(texts, floats, exact values), or None when a text is not plain digits."""
    if not _NUMBERS.fullmatch("\n".join(texts)):
        return None
    # float() of a plain decimal text is its nearest float (correctly rounded), as the general path's cast.
    return texts, np.fromiter(map(float, texts), np.float64, len(texts)), list(map(Decimal, texts))


def _times(texts: list[str]) -> np.ndarray | None:
    """Epoch microseconds of each time, when all are in one strict notation (see the module)."""
    first = texts[0]
    if _DIGITS.fullmatch(first):
        if not _DIGIT_LINES.fullmatch("\n".join(texts)):
            return None
        numbers = np.array(list(map(int, texts)), dtype=np.int64)
        micros = np.where(numbers > _EPOCH_MS_THRESHOLD, numbers * 1_000, numbers * 1_000_000)
        return micros if (micros < 2**53).all() else None  # beyond it the general path's floats round
    if _CDD.fullmatch(first):
        return _cdd_times(texts)
    matches = list(map(_ISO.fullmatch, texts))
    if not all(matches):
        return None
    days: dict[str, int] = {}
    out = np.empty(len(texts), dtype=np.int64)
    for i, match in enumerate(matches):
        day = match[1]
        ordinal = days.get(day)
        if ordinal is None:
            ordinal = days[day] = _day(day)
            if ordinal is None:
                return None
        if match[2] is None:
            seconds = 0
        else:
            hour, minute, second = int(match[2]), int(match[3]), int(match[4] or 0)
            if hour > 23 or minute > 59 or second > 59:
                return None
            seconds = hour * 3600 + minute * 60 + second
        out[i] = ordinal * _DAY_US + seconds * 1_000_000
    return out


def _cdd_times(texts: list[str]) -> np.ndarray | None:
    """CryptoDataDownload's ``YYYY-MM-DD HH-AM``, every one of them: hours 01-12, real dates."""
    if not _CDD_LINES.fullmatch("\n".join(texts)):
        return None
    text = np.array(texts)  # 16 characters each
    codes = text.view(np.uint32).reshape(len(texts), 16).astype(np.int64)
    hour = (codes[:, 11] - 48) * 10 + (codes[:, 12] - 48)
    if ((hour < 1) | (hour > 12)).any():
        return None
    hour = hour % 12 + np.where(codes[:, 14] == ord("P"), 12, 0)
    days, at = np.unique(text.astype("<U10"), return_inverse=True)
    ordinals = [_day(day) for day in days.tolist()]
    if None in ordinals:
        return None
    return np.asarray(ordinals, dtype=np.int64)[at] * _DAY_US + hour * 3_600_000_000


def _day(text: str) -> int | None:
    """Days since 1970-01-01 of an ISO date, None for a date that does not exist."""
    try:
        return date.fromisoformat(text).toordinal() - _UNIX_DAY
    except ValueError:
        return None


def _all_candles(micros: np.ndarray, step_us: int, columns: dict) -> bool:
    """Every row a candle validate would keep: aligned, no start twice, positive prices bounding each other."""
    ordered = np.sort(micros)  # (np.unique would import numpy.ma, ~20 ms)
    if (micros % step_us).any() or (ordered[1:] == ordered[:-1]).any():
        return False
    o, h, lo, c, v = (columns[name][1] for name in VALUES)
    if not (np.isfinite(np.stack((o, h, lo, c, v))).all() and (np.stack((o, h, lo, c)) > 0).all()):
        return False
    if (h < lo).any() or (h < np.maximum(o, c)).any() or (lo > np.minimum(o, c)).any():
        return False
    # Prices equal as floats but not as text: the order only the exact values can tell.
    for a, b in (("high", "low"), ("high", "open"), ("high", "close"), ("low", "open"), ("low", "close")):
        (ta, fa, xa), (tb, fb, xb) = columns[a], columns[b]
        for i in np.flatnonzero(fa == fb):
            if ta[i] != tb[i]:
                exact = {name: columns[name][2][i] for name in PRICES}
                if exact["high"] < exact["low"] or exact["high"] < max(exact["open"], exact["close"]) \
                        or exact["low"] > min(exact["open"], exact["close"]):
                    return False
    return True
