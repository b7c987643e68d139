"""VuManChu Cipher B/A indicators over a whole candle history, vectorised with numpy.

``compute_indicators`` is the batch computation over a frame (replays, seeding) and ``indicator_columns``
the same over float arrays (a backtest over the log, without pandas); ``IndicatorState``
(domain/indicators/state.py) gives the same values one closed candle at a time for the live loop.
The moving averages and windows are pandas' own arithmetic (domain/indicators/kernels.py), computed by
pandas for a frame and by kernels.py's loops for arrays of up to ``kernels.PYTHON_UP_TO`` candles.
Formulas, defaults, warm-up and signal rules are documented in docs/indicators.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from domain.indicators import kernels
from domain.indicators.params import (
    COLUMNS,
    FLAT_RSI_SPAN,
    FLOAT_COLUMNS,
    OHLCV,
    TIE_RTOL,
    WT_FACTOR,
    IndicatorParams,
)
from domain.indicators.candle_input import _check_values, candle_arrays
from domain.indicators.state import IndicatorState

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "IndicatorParams",
    "IndicatorState",
    "compute_indicators",
    "indicator_columns",
    "latest_snapshot",
    "candle_arrays",
]

def compute_indicators(candles: pd.DataFrame, params: IndicatorParams | None = None) -> pd.DataFrame:
    """All indicator columns for every candle, on the candles' own (UTC) index.

    Refuses, with a ValueError naming the problem, a missing OHLCV column, a naive or non-UTC or
    unsorted index, and non-numeric, non-finite, non-positive (prices) or negative (volume) values.
    """
    import pandas as pd

    p = params or IndicatorParams()
    o, h, l, c, v = candle_arrays(candles)
    columns = _compute(o, h, l, c, v, p, True)
    return pd.DataFrame(columns, index=candles.index, columns=list(COLUMNS))


def indicator_columns(arrays: tuple[np.ndarray, ...], starts: list, params: IndicatorParams | None = None,
                      use_pandas: bool = False) -> dict[str, np.ndarray]:
    """``compute_indicators``' columns (the same values, bit for bit) from open/high/low/close/volume float64
    arrays of candles starting at ``starts`` (UTC datetimes, strictly increasing), refused as a frame is;
    ``use_pandas``: its averages by pandas (loaded already), else by kernels.py's loops up to their limit."""
    if len(arrays) != len(OHLCV) or any(len(a) != len(starts) for a in arrays):
        raise ValueError(f"indicator_columns needs {len(OHLCV)} arrays as long as the starts")
    for k in range(1, len(starts)):
        if not starts[k - 1] < starts[k]:
            raise ValueError(f"candles must be strictly increasing in start; {starts[k]} follows {starts[k - 1]}")
    _check_values(arrays, starts.__getitem__, lambda name, at: float(arrays[OHLCV.index(name)][at]))
    o, h, l, c, v = (np.asarray(a, dtype=np.float64) for a in arrays)
    columns = _compute(o, h, l, c, v, params or IndicatorParams(), use_pandas)
    return {name: columns[name] for name in COLUMNS}


def latest_snapshot(frame: pd.DataFrame) -> dict[str, float | bool]:
    """The last row of an indicator frame as plain Python values (NaN stays float('nan'))."""
    if len(frame) == 0:
        raise ValueError("latest_snapshot needs at least one row; the indicator frame is empty")
    row = frame.iloc[-1]
    return {name: bool(row[name]) if frame[name].dtype == bool else float(row[name]) for name in frame.columns}


# --- vectorised building blocks -------------------------------------------------------------

def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def _ema(x: np.ndarray, n: int, use_pandas: bool) -> np.ndarray:
    # Pine's ema seeds with the first value: pandas ewm(span=n, adjust=False); leading NaNs wait.
    return kernels.ewm_mean(x, kernels.span_com(n), use_pandas)


def _sma(x: np.ndarray, n: int, use_pandas: bool) -> np.ndarray:
    # NaN while any value of the window is NaN, as Pine's sma.
    return kernels.rolling_mean(x, n, use_pandas)


def _wilder(x: np.ndarray, n: int, first: int, use_pandas: bool) -> np.ndarray:
    """Wilder's RMA of x (valid from index ``first``), seeded with the mean of its first n values."""
    out = np.full_like(x, np.nan)
    start = first + n - 1
    if start < len(x):
        seeded = x[start:].copy()
        seeded[0] = sum(x[first : start + 1].tolist()) / n  # summed left to right, as the live state
        out[start:] = kernels.ewm_mean(seeded, kernels.alpha_com(1.0 / n), use_pandas)
    return out


def _rsi(src: np.ndarray, n: int, use_pandas: bool) -> np.ndarray:
    """RSI with Wilder smoothing as TA-Lib/Pine; 50 where the window has no move at all."""
    change = np.diff(src, prepend=np.nan)
    gain = _wilder(np.maximum(change, 0.0), n, 1, use_pandas)
    loss = _wilder(np.maximum(-change, 0.0), n, 1, use_pandas)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * gain / total, np.where(np.isnan(total), np.nan, 50.0))


def _cross_over(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a > b) & (_shift(a, 1) <= _shift(b, 1))


def _value_when(cond: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Pine's valuewhen(cond, src, 0): src at the latest bar where cond held (NaN before any)."""
    last = np.maximum.accumulate(np.where(cond, np.arange(len(src)), -1))
    return np.where(last >= 0, src[np.maximum(last, 0)], np.nan)


# --- the indicators ------------------------------------------------------------------------

def _compute(o, h, l, c, v, p: IndicatorParams, use_pandas: bool) -> dict[str, np.ndarray]:
    """Every column; ``use_pandas``: the averages and windows by pandas itself (see kernels.py)."""
    out: dict[str, np.ndarray] = {}
    out["wt1"], out["wt2"] = _wavetrend((h + l + c) / 3.0, p, use_pandas)
    out["rsi"] = _rsi(c, p.rsi_len, use_pandas)
    out["mfi_area"] = _rsi_mfi_area(o, h, l, c, p, use_pandas)
    out["mfi"] = _money_flow_index(h, l, c, v, p.mfi_len, use_pandas)
    out["stoch_k"], out["stoch_d"] = _stoch_rsi(c, p, use_pandas)
    for i, n in enumerate(p.ema_ribbon_lengths, start=1):
        out[f"ema_ribbon_{i}"] = _ema(c, n, use_pandas)

    wt1, wt2 = out["wt1"], out["wt2"]
    warmup = np.arange(len(c)) < p.warmup_bars
    for name in FLOAT_COLUMNS:
        warmup |= np.isnan(out[name])
    up_state, down_state = wt2 - wt1 <= 0, wt2 - wt1 >= 0
    cross = _cross_over(wt1, wt2) | _cross_over(wt2, wt1)
    flags = {
        "wt_cross": cross,
        "wt_cross_up": cross & up_state,
        "wt_cross_down": cross & down_state,
        "wt_oversold": wt2 <= p.os_level,
        "wt_overbought": wt2 >= p.ob_level,
        "gold_buy": _gold_buy(wt2, l, out["rsi"], p),
        "long_ema_signal": _cross_over(out["ema_ribbon_2"], out["ema_ribbon_8"]),
        "short_ema_signal": _cross_over(out["ema_ribbon_8"], out["ema_ribbon_2"]),
    }
    flags["buy_signal"] = flags["wt_cross_up"] & flags["wt_oversold"]
    flags["sell_signal"] = flags["wt_cross_down"] & flags["wt_overbought"]
    for name, flag in flags.items():
        out[name] = flag & ~warmup  # no signal fires on an indicator that is still warming up
    out["warmup"] = warmup
    return out


def _wavetrend(ap: np.ndarray, p: IndicatorParams, use_pandas: bool) -> tuple[np.ndarray, np.ndarray]:
    esa = _ema(ap, p.wt_channel_len, use_pandas)
    dev = ap - esa
    d = _ema(np.abs(dev), p.wt_channel_len, use_pandas)
    # d == 0 only before the first price move (Pine: 0/0 = na, and ema() waits for a value) or
    # after a flat stretch long enough to underflow: there, no deviation means ci = 0.
    moved = np.maximum.accumulate(d > 0) if len(d) else d > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = np.where(d > 0, dev / (WT_FACTOR * d), np.where(moved, 0.0, np.nan))
    wt1 = _ema(ci, p.wt_average_len, use_pandas)
    return wt1, _sma(wt1, p.wt_ma_len, use_pandas)


def _rsi_mfi_area(o, h, l, c, p: IndicatorParams, use_pandas: bool) -> np.ndarray:
    span = h - l
    with np.errstate(invalid="ignore", divide="ignore"):
        body = np.where(span > 0, (c - o) / span, 0.0)  # a bar with high == low has no body either
    return _sma(body * p.rsi_mfi_multiplier, p.rsi_mfi_period, use_pandas) - p.rsi_mfi_pos_y


def _money_flow_index(h, l, c, v, n: int, use_pandas: bool) -> np.ndarray:
    tp = (h + l + c) / 3.0
    step = np.diff(tp, prepend=np.nan)
    step[np.abs(step) <= TIE_RTOL * tp] = 0.0  # explicit ties: no flow either way
    flow = tp * v
    pos = kernels.rolling_sum(np.where(step > 0, flow, 0.0), n, use_pandas).copy()
    neg = kernels.rolling_sum(np.where(step < 0, flow, 0.0), n, use_pandas)
    pos[: min(n, len(pos))] = np.nan  # the first bar has no previous typical price
    total = pos + neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * pos / total, np.where(np.isnan(total), np.nan, 50.0))


def _stoch_rsi(c: np.ndarray, p: IndicatorParams, use_pandas: bool) -> tuple[np.ndarray, np.ndarray]:
    rsi = _rsi(np.log(c) if p.stoch_use_log else c, p.stoch_rsi_len, use_pandas)
    lowest = kernels.rolling_min(rsi, p.stoch_len, use_pandas)
    highest = kernels.rolling_max(rsi, p.stoch_len, use_pandas)
    span = highest - lowest
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.where(span > FLAT_RSI_SPAN, 100.0 * (rsi - lowest) / span, np.where(np.isnan(span), np.nan, 50.0))
    k = _sma(raw, p.stoch_k_smooth, use_pandas)
    d = _sma(k, p.stoch_d_smooth, use_pandas)
    return ((k + d) / 2.0 if p.stoch_avg else k), d


def _gold_buy(wt2: np.ndarray, low: np.ndarray, rsi: np.ndarray, p: IndicatorParams) -> np.ndarray:
    """Cipher B's wtGoldBuy: a bullish WT divergence out of a deep low, with RSI below 30 there."""
    w1, w2, w3, w4 = (_shift(wt2, k) for k in (1, 2, 3, 4))
    bottom = (w4 > w2) & (w3 > w2) & (w2 < w1) & (w2 < wt2) & (w2 <= p.wt_div_os_level)
    low2, rsi2 = _shift(low, 2), _shift(rsi, 2)
    low_prev = _shift(_value_when(bottom, w2), 2)
    low_price = _shift(_value_when(bottom, low2), 2)
    last_rsi = _shift(_value_when(bottom, rsi2), 2)
    bull_div = bottom & (low2 < low_price) & (w2 > low_prev)
    return (
        bull_div
        & (low_prev <= p.os_level3)
        & (wt2 > p.os_level3)
        & (low_prev - wt2 <= -p.gold_min_wt_rise)
        & (last_rsi < p.gold_max_rsi)
    )
