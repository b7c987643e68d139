"""The rules strategy: Cipher B WaveTrend entries and exits, HOLD otherwise."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import numpy as np
import pytest

from domain.decision import DecisionContext
from domain.decision import TradeActionKind
from domain.events import FieldProblem
from domain.market import Candle
from domain.strategy_rules import RulesStrategy

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
CANDLE = Candle("BTC-USD", "1h", T0, D("60000"), D("60100"), D("59900"), D("60050"), D("3"))
QUIET = {"wt1": -10.0, "wt2": -12.0, "rsi": 48.0, "wt_cross_up": False, "wt_cross_down": False,
         "buy_signal": False, "sell_signal": False, "warmup": False}
BUY = {**QUIET, "wt1": -60.0, "wt2": -62.0, "wt_cross_up": True, "wt_oversold": True, "buy_signal": True}
SELL = {**QUIET, "wt1": 60.0, "wt2": 62.0, "wt_cross_down": True, "wt_overbought": True, "sell_signal": True}


def decide(indicators, quantity="0", **params):
    context = DecisionContext(
        product="BTC-USD", candle=CANDLE, indicators=indicators, recent_candles=[CANDLE],
        position_quantity=D(quantity), position_average_entry=None if D(quantity) == 0 else D("59000"),
        equity=D("10000"), cash=D("10000"),
    )
    return RulesStrategy(**params).decide(context)


def test_buy_signal_when_flat_goes_long_with_default_size_and_brackets():
    decision = decide(BUY)
    action = decision.action
    assert action.action is TradeActionKind.LONG
    assert (action.size_pct, action.stop_loss_pct, action.take_profit_pct) == (25, 2, 4)
    assert decision.strategy == "rules" and decision.failure_kind is None
    assert "buy signal" in action.rationale and "wt2=-62.0" in action.rationale


def test_parameters_set_size_and_brackets():
    action = decide(BUY, size_pct=10, stop_loss_pct=1.5, take_profit_pct=6).action
    assert (action.size_pct, action.stop_loss_pct, action.take_profit_pct) == (10, 1.5, 6)


def test_buy_signal_when_already_long_holds():
    assert decide(BUY, quantity="0.1").action.action is TradeActionKind.HOLD


def test_sell_signal_when_long_closes_the_position():
    action = decide(SELL, quantity="0.1").action
    assert action.action is TradeActionKind.CLOSE and action.size_pct == 100
    assert "sell signal" in action.rationale


def test_wt_cross_down_above_zero_when_long_closes():
    indicators = {**QUIET, "wt1": 20.0, "wt2": 22.0, "wt_cross_down": True}
    action = decide(indicators, quantity="0.1").action
    assert action.action is TradeActionKind.CLOSE and "above 0" in action.rationale


def test_wt_cross_down_below_zero_when_long_holds():
    indicators = {**QUIET, "wt1": -20.0, "wt2": -18.0, "wt_cross_down": True}
    assert decide(indicators, quantity="0.1").action.action is TradeActionKind.HOLD


def test_sell_signal_when_flat_holds_unless_shorts_are_allowed():
    assert decide(SELL).action.action is TradeActionKind.HOLD
    action = decide(SELL, allow_shorts=True).action
    assert action.action is TradeActionKind.SHORT and action.size_pct == 25 and action.stop_loss_pct == 2


@pytest.mark.parametrize("allow_shorts", [True, False])
def test_short_is_closed_on_buy_signal_or_cross_up_below_zero(allow_shorts):
    assert decide(BUY, quantity="-0.1", allow_shorts=allow_shorts).action.action is TradeActionKind.CLOSE
    cross_up = {**QUIET, "wt1": -20.0, "wt2": -22.0, "wt_cross_up": True}
    assert decide(cross_up, quantity="-0.1", allow_shorts=allow_shorts).action.action is TradeActionKind.CLOSE
    assert decide(QUIET, quantity="-0.1", allow_shorts=allow_shorts).action.action is TradeActionKind.HOLD


def test_warmup_holds_even_on_a_buy_signal():
    action = decide({**BUY, "warmup": True}).action
    assert action.action is TradeActionKind.HOLD and action.rationale.startswith("warming up")


def test_no_signal_holds_naming_the_indicator_values():
    action = decide(QUIET).action
    assert action.action is TradeActionKind.HOLD and action.size_pct == 0
    assert "wt1=-10.0" in action.rationale and "wt2=-12.0" in action.rationale and "rsi=48.0" in action.rationale
    assert len(action.rationale) <= 200


def test_missing_nan_and_none_indicators_hold_without_error():
    action = decide({}).action
    assert action.action is TradeActionKind.HOLD and "wt1=n/a" in action.rationale
    nan = decide({"wt1": float("nan"), "wt2": None, "buy_signal": None}).action
    assert nan.action is TradeActionKind.HOLD


def test_numpy_scalars_are_read_like_python_values():
    indicators = {**BUY, "buy_signal": np.bool_(True), "wt2": np.float64(-62.0), "warmup": np.bool_(False)}
    decision = decide(indicators)
    assert decision.action.action is TradeActionKind.LONG
    assert decision.inputs["buy_signal"] is True and decision.inputs["warmup"] is False


def test_inputs_record_the_values_decided_on():
    inputs = decide({**BUY, "stoch_k": 3.0, "rsi": float("nan")}, quantity="0").inputs
    assert inputs["buy_signal"] is True and inputs["wt2"] == -62.0
    assert inputs["rsi"] is None  # NaN is not JSON: recorded as unknown
    assert inputs["position_quantity"] == "0"
    assert "stoch_k" not in inputs  # only what the rules read


def test_same_inputs_give_the_same_decision():
    assert decide(BUY) == decide(BUY)


@pytest.mark.parametrize("params", [{"size_pct": 0}, {"size_pct": 101}, {"stop_loss_pct": -1}, {"take_profit_pct": 1001}])
def test_out_of_range_parameters_are_refused(params):
    with pytest.raises(FieldProblem):
        RulesStrategy(**params)


@pytest.mark.parametrize("allow_shorts", [False, True])
def test_holds_over_a_whole_history_are_evaluate_row_by_row(allow_shorts):
    """RulesStrategy.holds (columns, vectorised) == evaluate on each row, flat, long and short: the same HOLDs,
    the same rationales and inputs; NaN, infinities and a missing flag count as no signal."""
    from application.trading.backtest import frame_of, candles_of
    from domain.indicators.cipher import compute_indicators
    from domain.strategy_rules import INPUT_NAMES
    from infrastructure.candles.files import bundled_candles_path, read_candle_file

    frame = read_candle_file(bundled_candles_path()).frame.iloc[:3000]
    indicators = compute_indicators(frame_of(candles_of(frame, "BTC-USD", "1h")))
    columns = {name: indicators[name].to_numpy() for name in INPUT_NAMES}
    columns["wt2"] = columns["wt2"].copy()
    columns["wt2"][[200, 201]] = [np.inf, np.nan]
    columns["rsi"] = columns["rsi"].copy()
    columns["rsi"][300] = -np.inf
    columns["sell_signal"] = columns["sell_signal"].astype(object)
    columns["sell_signal"][400] = None
    strategy = RulesStrategy(allow_shorts=allow_shorts)
    holds = strategy.holds(columns)
    assert len(holds.flat) == 3000 and holds.flat.sum() > 2500 and not holds.flat.all() and not holds.long.all()
    for sign, quantity in ((0, D(0)), (1, D("0.5")), (-1, D("-0.5"))):
        for row in range(3000):
            verdict = strategy.evaluate({name: values[row] for name, values in columns.items()}, quantity)
            held = verdict.action.action is TradeActionKind.HOLD
            assert bool(holds.by_sign(sign)[row]) == held, (sign, row)
            if held:
                assert holds.rationale(row, sign) == verdict.action.rationale
            assert {name: holds.inputs[name][row] for name in INPUT_NAMES} == \
                {k: v for k, v in verdict.inputs.items() if k != "position_quantity"}
        for start, stop in ((0, 3000), (150, 199), (195, 210), (290, 310), (2990, 3000), (5, 5)):
            assert holds.rationales(start, stop, sign) == [holds.rationale(row, sign) for row in range(start, stop)]
