"""The moving averages and windows the indicators are made of, bit for bit as pandas computes them.

``ewm_mean`` is ``Series.ewm(com=..., adjust=False).mean()`` and ``rolling_mean``/``rolling_sum`` are
``Series.rolling(n).mean()/.sum()``: the same operations in the same order (pandas' recurrence for the
exponential mean, its compensated running sum that removes the value leaving the window before adding the
one entering it, its exact answer for a window of one repeated value), so the results are equal to the last
bit, not merely close (tests/unit/test_indicator_kernels.py holds them equal on real and random series).
``rolling_min``/``rolling_max`` are exact in any order.

Why not pandas itself: importing pandas costs a short process (a backtest of the bundled 20,111 candles)
about 0.25 s of CPU, more than these loops cost for up to ``PYTHON_UP_TO`` values; above that, and for a
series these loops do not take (a NaN after the first value, a negative zero in a sum), pandas computes them
(the indicators' own series have neither: their NaNs are the leading warm-up).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PYTHON_UP_TO", "ewm_mean", "rolling_max", "rolling_mean", "rolling_min", "rolling_sum", "span_com"]

PYTHON_UP_TO = 60_000
"""Series up to this long are computed here; longer ones by pandas (~2.5 us of Python per value and indicator
set against its ~0.25 s import)."""

NAN = float("nan")


def span_com(span: float) -> float:
    """pandas' centre of mass for ``span=`` (the value its ewm is computed from)."""
    return (span - 1) / 2.0


def alpha_com(alpha: float) -> float:
    """pandas' centre of mass for ``alpha=``."""
    return (1.0 - alpha) / alpha


def ewm_mean(x: np.ndarray, com: float, use_pandas: bool = False) -> np.ndarray:
    """``pd.Series(x).ewm(com=com, adjust=False).mean()`` (ignore_na=False, min_periods=0); ``use_pandas``:
    by pandas itself (a caller that has pandas loaded already)."""
    n = len(x)
    nan = np.isnan(x)
    first = int(np.argmin(nan)) if n else 0
    if not use_pandas and (n == 0 or nan[first]):  # empty, or no value at all
        return np.full(n, np.nan)
    if use_pandas or n > PYTHON_UP_TO or nan[first:].any():
        return _pandas().Series(x, copy=False).ewm(com=com, adjust=False).mean().to_numpy()
    alpha = 1.0 / (1.0 + com)
    keep = 1.0 - alpha
    # No gap after the first value: before each new value the old weight is ``keep`` (it is reset to 1 after
    # every value), so each step is pandas' ``(keep * w + alpha * x) / (keep + alpha)``.
    div = keep + alpha
    values = x[first:].tolist()
    weighted = values[0]
    out = [weighted]
    append = out.append
    for cur in values[1:]:
        if weighted != cur:  # pandas leaves the mean alone on an equal value (no rounding drift)
            weighted = (keep * weighted + alpha * cur) / div
        append(weighted)
    return np.concatenate((np.full(first, np.nan), np.array(out, dtype=np.float64)))


def rolling_mean(x: np.ndarray, n: int, use_pandas: bool = False) -> np.ndarray:
    """``pd.Series(x).rolling(n).mean()``."""
    return _rolling_total(x, n, True, use_pandas)


def rolling_sum(x: np.ndarray, n: int, use_pandas: bool = False) -> np.ndarray:
    """``pd.Series(x).rolling(n).sum()``."""
    return _rolling_total(x, n, False, use_pandas)


def _rolling_total(x: np.ndarray, n: int, mean: bool, use_pandas: bool) -> np.ndarray:
    size = len(x)
    nan = np.isnan(x)
    first = int(np.argmin(nan)) if size else 0
    tail = x[first:]
    if not use_pandas and (size == 0 or nan[first]):  # empty, or no value at all
        return np.full(size, np.nan)
    if use_pandas or size > PYTHON_UP_TO or nan[first:].any() or (np.signbit(tail) & (tail == 0)).any():
        window = _pandas().Series(x, copy=False).rolling(n)
        return (window.mean() if mean else window.sum()).to_numpy()
    # Leading NaNs change none of pandas' running state: the series from its first value on, NaN before.
    values = tail.tolist()
    totals = _compensated_window_sums(values, n)
    last = tail  # pandas keeps the last value and how many equal values end here: a window of one value
    same = _equal_run_lengths(tail)  # is answered with that value exactly (times n for a sum)
    if mean:
        with np.errstate(invalid="ignore"):
            out = totals / float(n)
        negatives = np.convolve((tail < 0).astype(np.int64), np.ones(n, dtype=np.int64))[: len(tail)]
        out[(negatives == 0) & (out < 0) | (negatives == n) & (out > 0)] = 0.0  # pandas' sign guard
        out = np.where(same >= n, last, out)
    else:
        out = np.where(same >= n, last * n, totals)
    out[: n - 1] = np.nan
    return np.concatenate((np.full(first, np.nan), out))


def _compensated_window_sums(values: list[float], n: int) -> np.ndarray:
    """pandas' running window sum: Kahan-compensated, the value leaving the window removed (with its own
    compensation) before the one entering it is added."""
    total = add_c = remove_c = 0.0
    out = []
    append = out.append
    for value in values[:n]:
        y = value - add_c
        t = total + y
        add_c = t - total - y
        total = t
        append(total)
    for value, old in zip(values[n:], values):
        y = -old - remove_c
        t = total + y
        remove_c = t - total - y
        total = t
        y = value - add_c
        t = total + y
        add_c = t - total - y
        total = t
        append(total)
    return np.array(out, dtype=np.float64)


def _equal_run_lengths(x: np.ndarray) -> np.ndarray:
    """At each value, how many equal values end there (1 after a change)."""
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    at = np.arange(len(x))
    return at - starts[np.searchsorted(starts, at, side="right") - 1] + 1


def rolling_min(x: np.ndarray, n: int, use_pandas: bool = False) -> np.ndarray:
    """``pd.Series(x).rolling(n).min()``: NaN until n values, and wherever the window holds a NaN."""
    return _rolling_extreme(x, n, "min", use_pandas)


def rolling_max(x: np.ndarray, n: int, use_pandas: bool = False) -> np.ndarray:
    """``pd.Series(x).rolling(n).max()``."""
    return _rolling_extreme(x, n, "max", use_pandas)


def _rolling_extreme(x: np.ndarray, n: int, how: str, use_pandas: bool) -> np.ndarray:
    if use_pandas or (np.signbit(x) & (x == 0)).any():  # which zero is the least: as pandas answers it
        return getattr(_pandas().Series(x, copy=False).rolling(n), how)().to_numpy()
    how = np.min if how == "min" else np.max
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = how(np.lib.stride_tricks.sliding_window_view(x, n), axis=1)
    return out


def _pandas():
    import pandas

    return pandas
