"""The indicator kernels (domain/indicators/kernels.py) are pandas' ewm and rolling windows to the last bit, and
indicator_columns (arrays, without pandas) gives compute_indicators' columns exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domain.indicators import kernels
from domain.indicators.cipher import COLUMNS, compute_indicators, indicator_columns
from domain.indicators.params import IndicatorParams


def _series(kind: str, n: int = 3000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 1, n)) + 50
    if kind == "leading_nan":
        x[:37] = np.nan
    elif kind == "gaps":
        x[[0, 1, 500, 501, 502, 1999]] = np.nan
    elif kind == "flats":  # long runs of one value: pandas' exact answer for a window of equal values
        x = np.repeat(np.round(x[: n // 50], 1), 50)
    elif kind == "signs":  # values of both signs, exact zeros, and sums that cancel
        x = np.round(rng.normal(0, 1, n), 2)
        x[100:140] = 0.0
    elif kind == "negative_zero":
        x[200:205] = -0.0
    elif kind == "tiny":
        x = x * 1e-12
    elif kind == "all_nan":
        x[:] = np.nan
    return x


KINDS = ["plain", "leading_nan", "gaps", "flats", "signs", "negative_zero", "tiny", "all_nan"]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and \
        np.array_equal(np.signbit(a[~np.isnan(a)]), np.signbit(b[~np.isnan(b)]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("span", [1, 2, 3, 5, 9, 12, 34, 200])
def test_ewm_is_pandas_ewm(kind, span):
    x = _series(kind)
    assert _same(kernels.ewm_mean(x, kernels.span_com(span)), pd.Series(x).ewm(span=span, adjust=False).mean().to_numpy())
    alpha = 1.0 / span
    assert _same(kernels.ewm_mean(x, kernels.alpha_com(alpha)),
                 pd.Series(x).ewm(alpha=alpha, adjust=False).mean().to_numpy())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 2, 3, 14, 60, 5000])
def test_rolling_windows_are_pandas_rolling(kind, n):
    x = _series(kind)
    rolling = pd.Series(x).rolling(n)
    assert _same(kernels.rolling_mean(x, n), rolling.mean().to_numpy())
    assert _same(kernels.rolling_sum(x, n), rolling.sum().to_numpy())
    assert _same(kernels.rolling_min(x, n), rolling.min().to_numpy())
    assert _same(kernels.rolling_max(x, n), rolling.max().to_numpy())


def test_short_and_empty_series():
    for x in (np.array([], dtype=np.float64), np.array([3.0]), np.array([np.nan, 2.0])):
        assert _same(kernels.ewm_mean(x, 2.0), pd.Series(x, dtype=np.float64).ewm(com=2.0, adjust=False).mean().to_numpy())
        for n in (1, 3):
            rolling = pd.Series(x, dtype=np.float64).rolling(n)
            assert _same(kernels.rolling_mean(x, n), rolling.mean().to_numpy())
            assert _same(kernels.rolling_sum(x, n), rolling.sum().to_numpy())
            assert _same(kernels.rolling_min(x, n), rolling.min().to_numpy())


def _candles(n: int, seed: int, flat_from: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.round(np.exp(np.cumsum(rng.normal(0, 0.01, n))) * 9000, 2)
    if flat_from is not None:
        close[flat_from:flat_from + 120] = close[flat_from]
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + np.round(rng.uniform(0, 20, n), 2)
    low = np.minimum(open_, close) - np.round(rng.uniform(0, 20, n), 2)
    if flat_from is not None:
        high[flat_from + 1:flat_from + 120] = low[flat_from + 1:flat_from + 120] = close[flat_from]
    volume = np.round(rng.uniform(0, 50, n), 4)
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC", name="start")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


@pytest.mark.parametrize("n, seed, flat_from, params", [
    (5000, 1, None, None),
    (3000, 2, 1000, None),  # a flat stretch: no moves, equal windows
    (800, 3, None, IndicatorParams(wt_channel_len=5, rsi_len=7, mfi_len=3, stoch_len=20, ema_ribbon_lengths=(2, 3, 5, 8, 13, 21, 34, 55))),
    (40, 4, None, None),  # shorter than the warm-up
])
def test_indicator_columns_are_compute_indicators_exactly(n, seed, flat_from, params):
    frame = _candles(n, seed, flat_from)
    expected = compute_indicators(frame, params)
    arrays = tuple(frame[name].to_numpy() for name in ("open", "high", "low", "close", "volume"))
    got = indicator_columns(arrays, list(frame.index.to_pydatetime()), params)
    assert list(got) == list(COLUMNS)
    for name in COLUMNS:
        assert _same(np.asarray(got[name], dtype=np.float64), expected[name].to_numpy(dtype=np.float64)), name
        assert got[name].dtype == expected[name].dtype, name


def test_indicator_columns_refuse_what_compute_indicators_refuses():
    frame = _candles(50, 5)
    arrays = [frame[name].to_numpy().copy() for name in ("open", "high", "low", "close", "volume")]
    starts = list(frame.index.to_pydatetime())
    with pytest.raises(ValueError, match="strictly increasing"):
        indicator_columns(tuple(arrays), starts[:10] + starts[9:49])
    arrays[4][7] = -1.0
    with pytest.raises(ValueError, match=r"volume must be finite and >= 0; 2020-01-01 07:00:00\+00:00 has -1.0"):
        indicator_columns(tuple(arrays), starts)
    arrays[4][7] = 1.0
    arrays[1][9] = arrays[2][9] - 1  # high below low
    with pytest.raises(ValueError, match="inconsistent"):
        indicator_columns(tuple(arrays), starts)
