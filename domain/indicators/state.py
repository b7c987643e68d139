"""The indicator set one closed candle at a time, for the live loop.

``IndicatorState.update`` keeps only EMA/Wilder states and short windows (the longest is the
RSI+MFI area's 60 values), so a step costs the same after a day or after a year. Fed the same
candles, it yields the values of ``compute_indicators`` for the latest row (to float rounding:
the tests hold it to 1e-9 relative on real data).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from domain.indicators.candle_input import candle_arrays
from domain.indicators.params import COLUMNS, FLAT_RSI_SPAN, OHLCV, TIE_RTOL, WT_FACTOR, IndicatorParams

NAN = float("nan")


class _Ema:
    """Pine ema / pandas ewm(adjust=False): seeded with the first value, same arithmetic."""

    __slots__ = ("alpha", "keep", "value")

    def __init__(self, alpha: float):
        self.alpha, self.keep, self.value = alpha, 1.0 - alpha, NAN

    def update(self, x: float) -> float:
        if math.isnan(self.value):
            self.value = x  # a NaN input before the seed keeps waiting, as ewm does
        elif self.value != x and not math.isnan(x):
            self.value = (self.keep * self.value + self.alpha * x) / (self.keep + self.alpha)
        return self.value


class _Window:
    """The last n values; statistics are NaN until it is full or while it holds a NaN."""

    __slots__ = ("n", "values")

    def __init__(self, n: int):
        self.n, self.values = n, deque(maxlen=n)

    def push(self, x: float) -> _Window:
        self.values.append(x)
        return self

    def ready(self) -> bool:
        return len(self.values) == self.n and not any(math.isnan(x) for x in self.values)

    def mean(self) -> float:
        return sum(self.values) / self.n if self.ready() else NAN

    def total(self) -> float:
        return sum(self.values) if self.ready() else NAN

    def low_high(self) -> tuple[float, float]:
        return (min(self.values), max(self.values)) if self.ready() else (NAN, NAN)


class _Rsi:
    """Wilder RSI: averages seeded with the mean of the first n moves, then RMA (alpha 1/n)."""

    __slots__ = ("n", "prev", "seed_gains", "seed_losses", "gain", "loss")

    def __init__(self, n: int):
        self.n, self.prev = n, NAN
        self.seed_gains: list[float] = []
        self.seed_losses: list[float] = []
        self.gain, self.loss = _Ema(1.0 / n), _Ema(1.0 / n)

    def update(self, x: float) -> float:
        prev, self.prev = self.prev, x
        if math.isnan(prev):
            return NAN
        change = x - prev
        up, down = max(change, 0.0), max(-change, 0.0)
        if self.seed_gains is not None:
            self.seed_gains.append(up)
            self.seed_losses.append(down)
            if len(self.seed_gains) < self.n:
                return NAN
            up, down = sum(self.seed_gains) / self.n, sum(self.seed_losses) / self.n
            self.seed_gains = self.seed_losses = None  # seeded: from now on, plain RMA steps
        gain, loss = self.gain.update(up), self.loss.update(down)
        total = gain + loss
        return 100.0 * gain / total if total > 0 else 50.0


class IndicatorState:
    """Incremental twin of ``compute_indicators``: ``update`` one closed candle, get its row."""

    def __init__(self, params: IndicatorParams | None = None):
        p = self.params = params or IndicatorParams()
        self.rows = 0
        self._warmup_bars = p.warmup_bars
        self._esa, self._dev = _Ema(2 / (p.wt_channel_len + 1)), _Ema(2 / (p.wt_channel_len + 1))
        self._moved = False
        self._wt1, self._wt1_window = _Ema(2 / (p.wt_average_len + 1)), _Window(p.wt_ma_len)
        self._rsi, self._stoch_rsi = _Rsi(p.rsi_len), _Rsi(p.stoch_rsi_len)
        self._stoch_window, self._k_window = _Window(p.stoch_len), _Window(p.stoch_k_smooth)
        self._d_window = _Window(p.stoch_d_smooth)
        self._area = _Window(p.rsi_mfi_period)
        self._prev_tp, self._pos_flow, self._neg_flow = NAN, _Window(p.mfi_len), _Window(p.mfi_len)
        self._ribbon = [_Ema(2 / (n + 1)) for n in p.ema_ribbon_lengths]
        self._prev = {"wt1": NAN, "wt2": NAN, "ema_ribbon_2": NAN, "ema_ribbon_8": NAN}
        # gold buy: the last 5 wt2, 3 lows, 3 rsi, and the last 3 valuewhen() triples
        self._wt2_hist = deque([NAN] * 5, maxlen=5)
        self._low_hist = deque([NAN] * 3, maxlen=3)
        self._rsi_hist = deque([NAN] * 3, maxlen=3)
        self._bottom_hist = deque([(NAN, NAN, NAN)] * 3, maxlen=3)

    @classmethod
    def from_candles(cls, candles: Any, params: IndicatorParams | None = None) -> IndicatorState:
        """A state that has seen every row of a candle frame (checked as compute_indicators does)."""
        state = cls(params)
        for row in zip(*(a.tolist() for a in candle_arrays(candles))):
            state._step(*row)
        return state

    def update(self, candle_row: Any) -> dict[str, float | bool]:
        """Advance by one closed candle (a mapping, a pandas row or a Candle) and return its row."""
        values = [_number(candle_row, name) for name in OHLCV]
        o, h, l, c, v = values
        bad = [n for n, x in zip(OHLCV, values) if not (math.isfinite(x) and (x >= 0 if n == "volume" else x > 0))]
        if bad:
            raise ValueError(f"candle field(s) {', '.join(bad)} out of range in {dict(zip(OHLCV, values))}")
        if h < l or h < max(o, c) or l > min(o, c):
            raise ValueError(f"candle is inconsistent: high {h} low {l} open {o} close {c}")
        return self._step(o, h, l, c, v)

    def _step(self, o: float, h: float, l: float, c: float, v: float) -> dict[str, float | bool]:
        p, row = self.params, {}
        tp = (h + l + c) / 3.0
        esa = self._esa.update(tp)
        dev = tp - esa
        d = self._dev.update(abs(dev))
        self._moved = self._moved or d > 0
        ci = dev / (WT_FACTOR * d) if d > 0 else (0.0 if self._moved else NAN)
        wt1 = row["wt1"] = self._wt1.update(ci)
        wt2 = row["wt2"] = self._wt1_window.push(wt1).mean()

        rsi = row["rsi"] = self._rsi.update(c)
        body = (c - o) / (h - l) if h > l else 0.0
        row["mfi_area"] = self._area.push(body * p.rsi_mfi_multiplier).mean() - p.rsi_mfi_pos_y
        row["mfi"] = self._money_flow(tp, v)
        row["stoch_k"], row["stoch_d"] = self._stoch(c)
        for i, ema in enumerate(self._ribbon, start=1):
            row[f"ema_ribbon_{i}"] = ema.update(c)

        warmup = self.rows < self._warmup_bars or any(math.isnan(x) for x in row.values())
        prev = self._prev
        ema2, ema8, prev2, prev8 = row["ema_ribbon_2"], row["ema_ribbon_8"], prev["ema_ribbon_2"], prev["ema_ribbon_8"]
        cross = _over(wt1, wt2, prev["wt1"], prev["wt2"]) or _over(wt2, wt1, prev["wt2"], prev["wt1"])
        flags = {
            "wt_cross": cross,
            "wt_cross_up": cross and wt2 - wt1 <= 0,
            "wt_cross_down": cross and wt2 - wt1 >= 0,
            "wt_oversold": wt2 <= p.os_level,
            "wt_overbought": wt2 >= p.ob_level,
            "gold_buy": self._gold_buy(wt2, l, rsi),
            "long_ema_signal": _over(ema2, ema8, prev2, prev8),
            "short_ema_signal": _over(ema8, ema2, prev8, prev2),
        }
        flags["buy_signal"] = flags["wt_cross_up"] and flags["wt_oversold"]
        flags["sell_signal"] = flags["wt_cross_down"] and flags["wt_overbought"]
        for name in prev:
            prev[name] = row[name]
        row.update({name: bool(flag) and not warmup for name, flag in flags.items()})
        row["warmup"] = warmup
        self.rows += 1
        return {name: row[name] for name in COLUMNS}

    def _money_flow(self, tp: float, volume: float) -> float:
        prev, self._prev_tp = self._prev_tp, tp
        if math.isnan(prev):
            return NAN
        step = tp - prev
        step = 0.0 if abs(step) <= TIE_RTOL * tp else step
        self._pos_flow.push(tp * volume if step > 0 else 0.0)
        self._neg_flow.push(tp * volume if step < 0 else 0.0)
        pos, neg = self._pos_flow.total(), self._neg_flow.total()
        total = pos + neg
        return NAN if math.isnan(total) else (100.0 * pos / total if total > 0 else 50.0)

    def _stoch(self, close: float) -> tuple[float, float]:
        p = self.params
        rsi = self._stoch_rsi.update(math.log(close) if p.stoch_use_log else close)
        low, high = self._stoch_window.push(rsi).low_high()
        span = high - low
        raw = NAN if math.isnan(span) else (100.0 * (rsi - low) / span if span > FLAT_RSI_SPAN else 50.0)
        k = self._k_window.push(raw).mean()
        d = self._d_window.push(k).mean()
        return ((k + d) / 2.0 if p.stoch_avg else k), d

    def _gold_buy(self, wt2: float, low: float, rsi: float) -> bool:
        p = self.params
        self._wt2_hist.append(wt2)
        self._low_hist.append(low)
        self._rsi_hist.append(rsi)
        w4, w3, w2, w1, w0 = self._wt2_hist
        bottom = w4 > w2 and w3 > w2 and w2 < w1 and w2 < w0 and w2 <= p.wt_div_os_level
        low2, rsi2 = self._low_hist[0], self._rsi_hist[0]
        self._bottom_hist.append((w2, low2, rsi2) if bottom else self._bottom_hist[-1])
        low_prev, low_price, last_rsi = self._bottom_hist[0]  # valuewhen(...)[2]: two bars ago
        bull_div = bottom and low2 < low_price and w2 > low_prev
        return (
            bull_div
            and low_prev <= p.os_level3
            and wt2 > p.os_level3
            and low_prev - wt2 <= -p.gold_min_wt_rise
            and last_rsi < p.gold_max_rsi
        )


def _over(a: float, b: float, prev_a: float, prev_b: float) -> bool:
    """Pine crossover(a, b): above now, at or below on the previous bar (NaN never crosses)."""
    return a > b and prev_a <= prev_b


def _number(candle_row: Any, name: str) -> float:
    try:
        value = candle_row[name]
    except (KeyError, TypeError, IndexError):
        if not hasattr(candle_row, name):
            raise ValueError(f"candle has no field {name}; need {', '.join(OHLCV)}") from None
        value = getattr(candle_row, name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"candle field {name} is not a number: {value!r}") from None
