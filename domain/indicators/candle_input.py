"""The candles an indicator computation takes, checked: a frame's OHLCV as float arrays (``candle_arrays``) and
the values' checks shared with arrays given directly (``_check_values``). Used by the batch computation
(domain/indicators/cipher.py) and by ``IndicatorState.from_candles`` (domain/indicators/state.py), which
imports it without importing the batch module."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from domain.indicators.params import OHLCV

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["UTC_NAMES", "candle_arrays"]

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "UTC+00:00", "Z"})


def candle_arrays(candles: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """open/high/low/close/volume as float64 arrays, after checking the frame (see compute_indicators)."""
    import pandas as pd

    if not isinstance(candles, pd.DataFrame):
        raise ValueError(f"candles must be a pandas DataFrame, got {type(candles).__name__}")
    missing = [name for name in OHLCV if name not in candles.columns]
    if missing:
        raise ValueError(f"candles lack column(s) {', '.join(missing)}; need {', '.join(OHLCV)}")
    index = candles.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"candles need a UTC DatetimeIndex, got a {type(index).__name__}")
    if index.tz is None:
        raise ValueError("candles index is timezone-naive; localize it to UTC")
    if str(index.tz) not in UTC_NAMES:
        raise ValueError(f"candles index is in time zone {index.tz}; convert it to UTC")
    if len(index) > 1:
        steps = np.diff(index.asi8)
        if (steps <= 0).any():
            at = int(np.argmax(steps <= 0)) + 1
            raise ValueError(f"candles index must be strictly increasing; {index[at]} follows {index[at - 1]}")
    arrays = []
    for name in OHLCV:
        try:
            arrays.append(candles[name].to_numpy(dtype=np.float64, copy=True))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"candles column {name} is not numeric: {exc}") from None
    _check_values(arrays, index.__getitem__, lambda name, at: candles[name].iloc[at])
    return tuple(arrays)


def _check_values(arrays, label: Callable[[int], object], shown: Callable[[str, int], object]) -> None:
    """Refuse non-finite, non-positive (prices) or negative (volume) values and inconsistent candles."""
    for name, values in zip(OHLCV, arrays):
        bad = ~np.isfinite(values) | ((values < 0) if name == "volume" else (values <= 0))
        if bad.any():
            at = int(np.argmax(bad))
            need = "finite and >= 0" if name == "volume" else "finite and > 0"
            raise ValueError(f"candles column {name} must be {need}; {label(at)} has {shown(name, at)!r}")
    o, h, l, c, _ = arrays
    bad = (h < l) | (h < np.maximum(o, c)) | (l > np.minimum(o, c))
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"candle at {label(at)} is inconsistent: high {h[at]} low {l[at]} open {o[at]} close {c[at]}")
