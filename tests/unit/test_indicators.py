"""VuManChu Cipher B/A indicators: batch values, TA-Lib cross-checks, live state, edge bars, refusals."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from domain.indicators.params import BOOL_COLUMNS
from domain.indicators.cipher import (
    COLUMNS,
    IndicatorParams,
    IndicatorState,
    compute_indicators,
    latest_snapshot,
)

talib = pytest.importorskip("talib", reason="TA-Lib (dev extra) is the reference for EMA, RSI and MFI")

DATA_NAME = "coinbase_btcusd_1h"
RIBBON = (5, 11, 15, 18, 21, 24, 28, 34)


def _data_candidates() -> list[Path]:
    import infrastructure

    repo_root = Path(infrastructure.__file__).resolve().parent.parent
    return [
        Path(str(resources.files("infrastructure") / "candles" / "data" / f"{DATA_NAME}.csv.gz")),
        repo_root / "infrastructure" / "candles" / "data" / f"{DATA_NAME}.csv.gz",
        repo_root.parent / "shared" / "data" / f"{DATA_NAME}.csv",
        Path("/work/shared/data") / f"{DATA_NAME}.csv",  # last resort on the development machine
    ]


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    """Real Coinbase BTC-USD hourly bars (CryptoDataDownload format), oldest first, volume in BTC."""
    path = next((p for p in _data_candidates() if p.is_file()), None)
    if path is None:
        pytest.skip(f"no {DATA_NAME} data: looked in {', '.join(map(str, _data_candidates()))}")
    raw = pd.read_csv(path, skiprows=1)  # line 1 is the CryptoDataDownload banner
    raw.index = pd.to_datetime(raw.pop("date"), format="%Y-%m-%d %I-%p", utc=True)
    frame = raw.sort_index().rename(columns={"volume": "volume_usd", "volume_btc": "volume"})
    return frame[["open", "high", "low", "close", "volume"]]


@pytest.fixture(scope="module")
def indicators(candles: pd.DataFrame) -> pd.DataFrame:
    return compute_indicators(candles)


def _bars(closes, *, highs=None, lows=None, opens=None, volumes=None) -> pd.DataFrame:
    closes = np.asarray(closes, dtype=float)
    n = len(closes)
    return pd.DataFrame(
        {
            "open": closes if opens is None else opens,
            "high": closes if highs is None else highs,
            "low": closes if lows is None else lows,
            "close": closes,
            "volume": np.ones(n) if volumes is None else volumes,
        },
        index=pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
    )


def _assert_rows_equal(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    for name in COLUMNS:
        want, got = expected[name].to_numpy(), actual[name].to_numpy()
        if want.dtype == bool:
            assert (want == got).all(), f"{name} differs at rows {np.flatnonzero(want != got)[:5]}"
        else:
            # 1e-9 relative; the 1e-9 absolute floor is for values crossing zero (wt1, mfi_area).
            close = np.isclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
            assert close.all(), f"{name} differs at rows {np.flatnonzero(~close)[:5]}"


# --- output shape and published defaults ------------------------------------------------------

def test_compute_indicators_on_real_candles_returns_every_column_on_the_same_index(candles, indicators):
    assert list(indicators.columns) == list(COLUMNS)
    assert indicators.index.equals(candles.index)
    for name in COLUMNS:
        expected = bool if name in BOOL_COLUMNS or name == "warmup" else float
        assert indicators[name].dtype == np.dtype(expected), name


def test_indicator_params_defaults_are_the_published_cipher_b_and_cipher_a_inputs():
    p = IndicatorParams()
    assert (p.wt_channel_len, p.wt_average_len, p.wt_ma_len) == (9, 12, 3)
    assert (p.ob_level, p.ob_level2, p.ob_level3) == (53, 60, 100)
    assert (p.os_level, p.os_level2, p.os_level3) == (-53, -60, -75)
    assert (p.rsi_mfi_period, p.rsi_mfi_multiplier, p.rsi_mfi_pos_y) == (60, 150, 2.5)
    assert (p.stoch_len, p.stoch_rsi_len, p.stoch_k_smooth, p.stoch_d_smooth) == (14, 14, 3, 3)
    assert p.stoch_use_log is True and p.stoch_avg is False
    assert p.ema_ribbon_lengths == RIBBON
    assert p.warmup_bars == 59


@pytest.mark.parametrize(
    "change", [{"wt_channel_len": 0}, {"rsi_len": 2.5}, {"stoch_k_smooth": True}, {"ema_ribbon_lengths": (5, 11)}]
)
def test_indicator_params_with_a_bad_length_are_refused(change):
    with pytest.raises(ValueError, match=next(iter(change))):
        IndicatorParams(**change)


# --- cross-checks against TA-Lib ----------------------------------------------------------------

@pytest.mark.parametrize("position, length", list(enumerate(RIBBON, start=1)))
def test_ema_ribbon_seeded_like_talib_matches_talib_to_float_rounding(candles, indicators, position, length):
    # TA-Lib seeds with the SMA of the first n closes; n-1 copies of the first close in front make
    # that SMA the first close, which is where Pine's ema / ewm(adjust=False) start: same recursion.
    close = candles["close"].to_numpy()
    padded = talib.EMA(np.concatenate([np.full(length - 1, close[0]), close]), timeperiod=length)[length - 1 :]
    ours = indicators[f"ema_ribbon_{position}"].to_numpy()
    np.testing.assert_allclose(ours, padded, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours, candles["close"].ewm(span=length, adjust=False).mean(), rtol=1e-15)


@pytest.mark.parametrize("position, length", list(enumerate(RIBBON, start=1)))
def test_ema_ribbon_against_plain_talib_differs_only_by_the_decaying_seed_gap(candles, indicators, position, length):
    close = candles["close"].to_numpy()
    reference = talib.EMA(close, timeperiod=length)
    ours = indicators[f"ema_ribbon_{position}"].to_numpy()
    start, keep = length - 1, 1.0 - 2.0 / (length + 1)
    seed_gap = abs(ours[start] - reference[start])
    bars_after = np.arange(len(close) - start)
    bound = seed_gap * keep**bars_after * (1 + 1e-9) + 1e-12 * close[start:]
    assert (np.abs(ours[start:] - reference[start:]) <= bound).all()
    converged = start + int(np.ceil(np.log(1e-12) / np.log(keep)))  # the gap is < 1e-12 of itself
    np.testing.assert_allclose(ours[converged:], reference[converged:], rtol=1e-12)


def test_rsi_on_real_candles_matches_talib_from_its_first_value(candles, indicators):
    reference = talib.RSI(candles["close"].to_numpy(), timeperiod=14)
    ours = indicators["rsi"].to_numpy()
    assert np.isnan(ours[:14]).all() and not np.isnan(ours[14:]).any()
    np.testing.assert_allclose(ours[14:], reference[14:], rtol=0, atol=1e-10)


def test_mfi_on_real_candles_matches_talib_except_where_no_money_flowed(candles, indicators):
    h, l, c, v = (candles[k].to_numpy() for k in ("high", "low", "close", "volume"))
    reference = talib.MFI(h, l, c, v, timeperiod=14)
    ours = indicators["mfi"].to_numpy()
    assert np.isnan(ours[:14]).all()
    no_volume = pd.Series(v).rolling(14).sum().to_numpy() == 0
    no_volume[:14] = False
    assert no_volume.any(), "the real data has a 14-hour stretch without volume"
    # TA-Lib says 0 (maximally oversold) without money flow; we say 50 (no pressure either way).
    assert (reference[no_volume] == 0).all() and (ours[no_volume] == 50).all()
    flowed = ~no_volume
    flowed[:14] = False
    # Tolerance: TA-Lib keeps running sums; ties are decided alike (see the tie test below).
    np.testing.assert_allclose(ours[flowed], reference[flowed], rtol=0, atol=1e-8)


def test_mfi_on_real_candles_matches_exact_decimal_arithmetic(candles, indicators):
    # Exact typical prices make ties real ties: the reference for the explicit tie rule.
    rows = candles[["high", "low", "close", "volume"]].to_numpy().tolist()
    tp = [(Decimal(repr(h)) + Decimal(repr(l)) + Decimal(repr(c))) / 3 for h, l, c, _ in rows]
    flows = [(Decimal(0), Decimal(0))] + [
        ((tp[i] * Decimal(repr(rows[i][3])), Decimal(0)) if tp[i] > tp[i - 1]
         else (Decimal(0), tp[i] * Decimal(repr(rows[i][3]))) if tp[i] < tp[i - 1]
         else (Decimal(0), Decimal(0)))
        for i in range(1, len(rows))
    ]
    ours = indicators["mfi"].to_numpy()
    for i in range(14, len(rows), 7):
        pos = sum(f[0] for f in flows[i - 13 : i + 1])
        neg = sum(f[1] for f in flows[i - 13 : i + 1])
        expected = 50.0 if pos + neg == 0 else float(100 * pos / (pos + neg))
        assert ours[i] == pytest.approx(expected, abs=1e-9), i


def test_mfi_typical_price_tie_from_float_rounding_counts_as_no_flow():
    # Two real Coinbase bars (2018-06-27 03:00 and 04:00): h+l+c is 18154.70 for both, but the
    # float typical prices differ by one ulp. Naively, A->B is selling and B->A buying.
    a, b = (6080.0, 6035.0, 6039.7), (6060.0, 6039.69, 6055.01)
    assert sum(a) / 3 != sum(b) / 3
    bars = [a if i % 2 == 0 else b for i in range(20)]
    frame = _bars(
        [x[2] for x in bars], highs=[x[0] for x in bars], lows=[x[1] for x in bars],
        opens=[x[2] for x in bars], volumes=[1.0 if i % 2 == 0 else 3.0 for i in range(20)],
    )
    assert (compute_indicators(frame)["mfi"].to_numpy()[14:] == 50.0).all()


def test_stoch_rsi_is_the_smoothed_stochastic_of_talib_rsi_on_log_close(candles, indicators):
    rsi = pd.Series(talib.RSI(np.log(candles["close"].to_numpy()), timeperiod=14))
    low, high = rsi.rolling(14).min(), rsi.rolling(14).max()
    # An RSI flat for 14 bars (a real 14-hour stretch without trades here) spans only rounding
    # noise (~1e-14), which the plain formula would blow up to anything in 0..100: neutral 50.
    flat = (high - low) <= 1e-9
    assert flat.sum() >= 3
    k = (100 * (rsi - low) / (high - low)).mask(flat, 50.0).rolling(3).mean()
    d = k.rolling(3).mean()
    np.testing.assert_allclose(indicators["stoch_k"].to_numpy(), k.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(indicators["stoch_d"].to_numpy(), d.to_numpy(), rtol=0, atol=1e-8)
    plain = compute_indicators(candles, IndicatorParams(stoch_use_log=False))
    assert not np.allclose(plain["stoch_k"].to_numpy()[60:], indicators["stoch_k"].to_numpy()[60:])


# --- known values, computed by hand -------------------------------------------------------------

def test_wavetrend_on_a_tiny_series_matches_the_hand_computation():
    # channel 3 and average 3 make both EMA alphas 1/2; ma 2. With h = l = c, hlc3 is the close:
    # ap   10      12        11       13
    # esa  10      11        11       12
    # d     0       0.5       0.25     0.625     (EMA of |ap - esa| = 0, 1, 0, 1)
    # ci   na    1/0.0075    0      1/0.009375 = 400/3, 0, 320/3
    # wt1  na     400/3     200/3    260/3
    # wt2  na      na        100     230/3
    params = IndicatorParams(wt_channel_len=3, wt_average_len=3, wt_ma_len=2)
    frame = compute_indicators(_bars([10.0, 12.0, 11.0, 13.0], volumes=np.zeros(4)), params)
    np.testing.assert_allclose(frame["wt1"], [np.nan, 400 / 3, 200 / 3, 260 / 3], rtol=1e-12)
    np.testing.assert_allclose(frame["wt2"], [np.nan, np.nan, 100.0, 230 / 3], rtol=1e-12)
    assert frame["warmup"].all() and not frame["wt_cross"].any()  # the cross at row 3 is in warm-up


def test_rsi_mfi_area_is_the_shifted_sma_of_scaled_candle_bodies():
    params = IndicatorParams(rsi_mfi_period=3)
    frame = _bars([10.0, 11.0, 12.0, 12.0], opens=[9.0, 10.0, 12.0, 12.0],
                  highs=[10.0, 11.0, 13.0, 12.0], lows=[9.0, 9.0, 11.0, 12.0])
    area = compute_indicators(frame, params)["mfi_area"].to_numpy()
    bodies = [150 * 1.0, 150 * 0.5, 150 * 0.0, 0.0]  # the last bar has high == low: no body
    np.testing.assert_allclose(area[2:], [sum(bodies[0:3]) / 3 - 2.5, sum(bodies[1:4]) / 3 - 2.5])


# --- signals ------------------------------------------------------------------------------------

def test_buy_and_sell_signals_on_real_candles_follow_the_cipher_b_rules(indicators):
    f = indicators
    wt1, wt2 = f["wt1"], f["wt2"]
    was_above = wt1.shift(1) > wt2.shift(1)
    crossed = ((wt1 > wt2) & ~was_above & wt1.shift(1).notna()) | ((wt1 < wt2) & (wt1.shift(1) >= wt2.shift(1)))
    live = ~f["warmup"]
    assert (f["wt_cross"] == (crossed & live)).all()
    assert (f["buy_signal"] == (crossed & (wt2 - wt1 <= 0) & (wt2 <= -53) & live)).all()
    assert (f["sell_signal"] == (crossed & (wt2 - wt1 >= 0) & (wt2 >= 53) & live)).all()
    assert f["buy_signal"].sum() > 100 and f["sell_signal"].sum() > 100


def test_ema_signals_on_real_candles_are_cipher_a_ema2_ema8_crossovers(indicators):
    e2, e8 = indicators["ema_ribbon_2"], indicators["ema_ribbon_8"]
    live = ~indicators["warmup"]
    assert (indicators["long_ema_signal"] == ((e2 > e8) & (e2.shift(1) <= e8.shift(1)) & live)).all()
    assert (indicators["short_ema_signal"] == ((e8 > e2) & (e8.shift(1) <= e2.shift(1)) & live)).all()
    assert indicators["long_ema_signal"].sum() > 50


def test_gold_buy_on_real_candles_fires_only_after_a_deep_wt_bottom_two_bars_back(indicators):
    gold = indicators["gold_buy"].to_numpy()
    wt2 = indicators["wt2"].to_numpy()
    rows = np.flatnonzero(gold)
    assert len(rows) > 0
    for i in rows:
        assert wt2[i] > -75
        bottom = wt2[i - 2]
        assert bottom <= -65 and bottom < min(wt2[i - 4], wt2[i - 3], wt2[i - 1], wt2[i])


# --- warm-up ------------------------------------------------------------------------------------

def test_warmup_on_real_candles_flags_exactly_the_first_59_rows(indicators):
    warmup = indicators["warmup"].to_numpy()
    assert warmup[:59].all() and not warmup[59:].any()
    floats = indicators[[n for n in COLUMNS if indicators[n].dtype == float]]
    assert not floats.iloc[59:].isna().any().any()
    signals = ["wt_cross", "buy_signal", "sell_signal", "gold_buy", "long_ema_signal", "short_ema_signal"]
    assert not indicators[signals].iloc[:59].any().any()


def test_warmup_after_a_flat_start_lasts_until_wavetrend_has_values():
    closes = np.concatenate([np.full(100, 50.0), 50.0 + np.sin(np.arange(1, 201) / 3.0)])  # moves at row 100
    frame = compute_indicators(_bars(closes))
    assert np.isnan(frame["wt1"].to_numpy()[:100]).all()  # no deviation yet: ci is 0/0, as in Pine
    first_valid = int(np.argmin(frame["warmup"].to_numpy()))
    assert first_valid == 102 and not frame["warmup"].to_numpy()[first_valid:].any()  # wt2 = sma of 3 wt1


# --- awkward bars ---------------------------------------------------------------------------------

def test_zero_volume_bars_give_finite_values_without_division_warnings():
    frame = _bars(100.0 + np.cumsum(np.tile([1.0, -0.5], 40)), volumes=np.zeros(80))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_indicators(frame)
    assert (result["mfi"].to_numpy()[14:] == 50.0).all()
    assert np.isfinite(result.iloc[59:][["wt1", "wt2", "rsi", "mfi_area", "stoch_k"]].to_numpy()).all()


def test_real_candles_with_high_equal_low_keep_every_indicator_finite(candles, indicators):
    flat = (candles["high"] == candles["low"]).to_numpy()
    assert flat[59:].sum() >= 20
    assert np.isfinite(indicators.iloc[59:][[n for n in COLUMNS if indicators[n].dtype == float]].to_numpy()).all()


def test_flat_market_gives_neutral_rsi_and_stochastic():
    result = compute_indicators(_bars(np.full(80, 100.0)))
    assert (result["rsi"].to_numpy()[14:] == 50.0).all()
    assert (result["stoch_k"].to_numpy()[40:] == 50.0).all()


def test_decimal_and_numeric_string_columns_convert_like_floats(candles, indicators):
    head = candles.iloc[:300]
    as_decimal = head.apply(lambda col: [Decimal(repr(x)) for x in col])
    as_text = head.astype(str)
    for other in (as_decimal, as_text):
        pd.testing.assert_frame_equal(compute_indicators(other), indicators.iloc[:300])


# --- refusals -----------------------------------------------------------------------------------

def _valid() -> pd.DataFrame:
    return _bars([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda f: f.drop(columns=["volume", "low"]), "low, volume"),
        (lambda f: f.tz_localize(None), "timezone-naive"),
        (lambda f: f.tz_convert("Europe/Paris"), "Europe/Paris"),
        (lambda f: f.reset_index(drop=True), "DatetimeIndex"),
        (lambda f: f.iloc[[0, 2, 1]], "strictly increasing"),
        (lambda f: f.iloc[[0, 1, 1]], "strictly increasing"),
        (lambda f: f.assign(close=[1.0, np.nan, 3.0]), "close"),
        (lambda f: f.assign(open=[1.0, 0.0, 3.0], low=[1.0, 0.0, 3.0]), "open"),
        (lambda f: f.assign(volume=[1.0, -1.0, 1.0]), "volume"),
        (lambda f: f.assign(high=["1", "two", "3"]), "high is not numeric"),
        (lambda f: f.assign(high=[1.0, 1.5, 3.0]), "inconsistent"),
    ],
)
def test_compute_indicators_with_bad_input_is_refused_naming_the_problem(spoil, message):
    with pytest.raises(ValueError, match=message):
        compute_indicators(spoil(_valid()))


def test_indicator_state_update_with_bad_candle_is_refused():
    state = IndicatorState()
    with pytest.raises(ValueError, match="volume"):
        state.update({"open": 1, "high": 1, "low": 1, "close": 1})
    with pytest.raises(ValueError, match="close"):
        state.update({"open": 1, "high": 1, "low": 1, "close": math.inf, "volume": 1})
    with pytest.raises(ValueError, match="inconsistent"):
        state.update({"open": 1, "high": 1, "low": 2, "close": 1, "volume": 1})
    assert state.rows == 0


# --- the live state -----------------------------------------------------------------------------

def test_indicator_state_after_a_seed_matches_batch_on_every_later_row(candles, indicators):
    seed = 500
    state = IndicatorState.from_candles(candles.iloc[:seed])
    rows = [state.update(row) for row in candles.iloc[seed:].to_dict("records")]
    _assert_rows_equal(indicators.iloc[seed:], pd.DataFrame(rows, index=candles.index[seed:]))


def test_indicator_state_from_the_first_candle_matches_batch_including_warmup(candles, indicators):
    state = IndicatorState()
    head = candles.iloc[:3000]
    rows = [state.update(row) for row in head.itertuples(index=False)]
    _assert_rows_equal(indicators.iloc[:3000], pd.DataFrame(rows, index=head.index))


def test_indicator_state_accepts_a_candle_object_with_decimal_fields():
    @dataclass(frozen=True)
    class Bar:
        open: Decimal
        high: Decimal
        low: Decimal
        close: Decimal
        volume: Decimal

    state = IndicatorState()
    row = state.update(Bar(Decimal("10"), Decimal("11"), Decimal("9"), Decimal("10.5"), Decimal("2")))
    assert list(row) == list(COLUMNS) and row["warmup"] is True and row["ema_ribbon_1"] == 10.5


# --- snapshot for the strategy prompt -----------------------------------------------------------

def test_latest_snapshot_gives_the_last_row_as_plain_python_values(indicators):
    snapshot = latest_snapshot(indicators)
    assert list(snapshot) == list(COLUMNS)
    for name, value in snapshot.items():
        assert type(value) in (float, bool), name
        assert value == indicators[name].iloc[-1]


def test_latest_snapshot_of_an_empty_frame_is_refused():
    with pytest.raises(ValueError, match="empty"):
        latest_snapshot(compute_indicators(_bars([1.0]).iloc[:0]))
