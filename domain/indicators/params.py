"""Indicator settings and the output schema shared by the batch and live computations.

Defaults are the published inputs of the TradingView scripts "VuManChu B Divergences"
(Cipher B, Pine v4, by vumanchu) and "VuManChu Cipher A" (Pine v4); see docs/indicators.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
WT_FACTOR = 0.015  # the CCI-style constant of LazyBear's WaveTrend
TIE_RTOL = 1e-12  # typical prices this close are one price that h+l+c rounded differently
FLAT_RSI_SPAN = 1e-9  # an RSI range (in RSI points) this small is rounding noise on a flat RSI

FLOAT_COLUMNS: tuple[str, ...] = (
    "wt1",
    "wt2",
    "rsi",
    "mfi_area",
    "mfi",
    "stoch_k",
    "stoch_d",
    *(f"ema_ribbon_{i}" for i in range(1, 9)),
)
BOOL_COLUMNS: tuple[str, ...] = (
    "wt_cross",
    "wt_cross_up",
    "wt_cross_down",
    "wt_oversold",
    "wt_overbought",
    "buy_signal",
    "sell_signal",
    "gold_buy",
    "long_ema_signal",
    "short_ema_signal",
)
COLUMNS: tuple[str, ...] = (
    "wt1",
    "wt2",
    "wt_cross",
    "wt_cross_up",
    "wt_cross_down",
    "wt_oversold",
    "wt_overbought",
    "rsi",
    "mfi_area",
    "mfi",
    "stoch_k",
    "stoch_d",
    *(f"ema_ribbon_{i}" for i in range(1, 9)),
    "buy_signal",
    "sell_signal",
    "gold_buy",
    "long_ema_signal",
    "short_ema_signal",
    "warmup",
)


@dataclass(frozen=True)
class IndicatorParams:
    """Every length and level of the indicator set; defaults as published (Cipher B unless noted).

    WaveTrend: ``wt_channel_len`` (wtChannelLen 9), ``wt_average_len`` (wtAverageLen 12; Cipher A
    uses 13), ``wt_ma_len`` (wtMALen 3; LazyBear's original WaveTrend uses 4). Levels: obLevel 53,
    obLevel2 60, obLevel3 100, osLevel -53, osLevel2 -60, osLevel3 -75 (Cipher A: -80).
    Gold buy: wtDivOSLevel -65 gates the bullish-divergence fractal; the script's literals are the
    minimum wt2 rise 5 and the RSI ceiling 30. RSI: rsiLen 14. Classic MFI: 14 (not in the scripts;
    the usual Money Flow Index). RSI+MFI area: rsiMFIperiod 60, rsiMFIMultiplier 150, rsiMFIPosY 2.5.
    Stochastic RSI: stochLen 14, stochRsiLen 14, stochKSmooth 3, stochDSmooth 3, stochUseLog true,
    stochAvg false. EMA ribbon (Cipher A ema1Len..ema8Len): 5, 11, 15, 18, 21, 24, 28, 34.
    """

    wt_channel_len: int = 9
    wt_average_len: int = 12
    wt_ma_len: int = 3
    ob_level: float = 53.0
    ob_level2: float = 60.0
    ob_level3: float = 100.0
    os_level: float = -53.0
    os_level2: float = -60.0
    os_level3: float = -75.0
    wt_div_os_level: float = -65.0
    gold_min_wt_rise: float = 5.0
    gold_max_rsi: float = 30.0
    rsi_len: int = 14
    mfi_len: int = 14
    rsi_mfi_period: int = 60
    rsi_mfi_multiplier: float = 150.0
    rsi_mfi_pos_y: float = 2.5
    stoch_len: int = 14
    stoch_rsi_len: int = 14
    stoch_k_smooth: int = 3
    stoch_d_smooth: int = 3
    stoch_use_log: bool = True
    stoch_avg: bool = False
    ema_ribbon_lengths: tuple[int, ...] = (5, 11, 15, 18, 21, 24, 28, 34)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_len", "_period", "_smooth")) and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"IndicatorParams.{f.name} must be an int >= 1, got {value!r}")
        lengths = self.ema_ribbon_lengths
        if len(lengths) != 8 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
            raise ValueError(f"IndicatorParams.ema_ribbon_lengths must be 8 ints >= 1, got {lengths!r}")

    @property
    def warmup_bars(self) -> int:
        """Rows flagged ``warmup`` at the start of a history: the longest lookback of any column.

        Lookbacks count earlier bars needed, TA-Lib style: EMA/SMA(n) n-1, RSI/MFI(n) n, a cross 1
        more than its inputs, a 5-bar fractal 4 more. With the defaults this is 59 (the RSI+MFI
        area's 60-bar SMA), so row 59 is the first valid row.
        """
        wt1 = 2 * (self.wt_channel_len - 1) + self.wt_average_len - 1
        wt2 = wt1 + self.wt_ma_len - 1
        stoch_k = self.stoch_rsi_len + self.stoch_len - 1 + self.stoch_k_smooth - 1
        stoch_d = stoch_k + self.stoch_d_smooth - 1
        ema2, ema8 = self.ema_ribbon_lengths[1] - 1, self.ema_ribbon_lengths[7] - 1
        return max(
            wt2 + 1,  # wt_cross looks one bar back
            wt2 + 4,  # gold buy's bottom fractal spans five wt2 values
            self.rsi_len + 2,  # gold buy reads rsi two bars back
            self.mfi_len,
            self.rsi_mfi_period - 1,
            stoch_d,
            max(self.ema_ribbon_lengths) - 1,
            max(ema2, ema8) + 1,  # Cipher A's EMA crossover looks one bar back
        )
