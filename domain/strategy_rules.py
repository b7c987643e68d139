"""The ``rules`` strategy: VuManChu Cipher B WaveTrend signals, deterministic, no key needed.

- warming up (``warmup`` true) -> HOLD;
- flat and ``buy_signal`` (WaveTrend crosses up in the oversold zone) -> LONG;
- long and (``sell_signal``, or WaveTrend crosses down above zero) -> CLOSE;
- with ``allow_shorts``: flat and ``sell_signal`` -> SHORT. A short is closed on the mirror of the
  long exit (``buy_signal``, or a cross up below zero) whether or not new shorts are allowed;
- anything else -> HOLD, with a rationale naming the indicator values.

Missing, ``None`` or NaN indicators count as "no signal". The decision reads nothing but its
arguments: no clock, environment, file or network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from decimal import Decimal
from typing import Any

import numpy as np

from domain.decision import DecisionContext, StrategyDecision, TradeAction, TradeActionKind
from domain.events import FieldProblem


__all__ = ["HOLDING", "INPUT_NAMES", "RulesHolds", "RulesStrategy", "RulesVerdict", "WARMING_UP"]

RATIONALE_LIMIT = 200
# The indicator values a decision reads; they are recorded as the decision's inputs.
INPUT_NAMES = ("warmup", "wt1", "wt2", "wt_cross_up", "wt_cross_down", "wt_oversold", "wt_overbought",
               "buy_signal", "sell_signal", "rsi")

WARMING_UP = "warming up: indicators not yet reliable"
HOLDING = {0: "flat, no entry signal", 1: "long, no exit signal", -1: "short, no exit signal"}
"""What a HOLD says when it is not warming up, by the sign of the position (its indicator values follow)."""

_HOLD_FORMATS = {sign: f"{text} (wt1=%.1f, wt2=%.1f, rsi=%.1f)" for sign, text in HOLDING.items()}  # == _one_decimal

Indicators = Mapping[str, float | bool | None]
_isfinite = math.isfinite


@dataclass(frozen=True)
class RulesVerdict:
    """What the rules decided and the values they decided on (the pure core of ``decide``)."""

    action: TradeAction
    inputs: dict[str, float | bool | str | None] = field(default_factory=dict)


class RulesStrategy:
    """Cipher B WaveTrend rules; the default strategy (``DecisionModel`` named "rules")."""

    name = "rules"

    def __init__(
        self,
        *,
        size_pct: float = 25.0,
        stop_loss_pct: float = 2.0,
        take_profit_pct: float = 4.0,
        allow_shorts: bool = False,
    ) -> None:
        if not 0 < size_pct <= 100:
            raise FieldProblem("size_pct", size_pct, "must be in (0, 100]")
        if not 0 <= stop_loss_pct <= 100:
            raise FieldProblem("stop_loss_pct", stop_loss_pct, "must be in [0, 100]")
        if not 0 <= take_profit_pct <= 1000:
            raise FieldProblem("take_profit_pct", take_profit_pct, "must be in [0, 1000]")
        self.size_pct = float(size_pct)
        self.stop_loss_pct = float(stop_loss_pct)
        self.take_profit_pct = float(take_profit_pct)
        self.allow_shorts = allow_shorts

    def decide(self, context: DecisionContext) -> StrategyDecision:
        """The decision on the context's latest candle (never fails: bad inputs mean HOLD)."""
        verdict = self.evaluate(context.indicators, context.position_quantity)
        return StrategyDecision(action=verdict.action, strategy=self.name, inputs=verdict.inputs)

    def evaluate(self, indicators: Indicators, position_quantity: Decimal) -> RulesVerdict:
        """The rules on one indicator snapshot and the current position quantity."""
        get = indicators.get
        inputs: dict[str, float | bool | str | None] = {name: _scalar(get(name)) for name in INPUT_NAMES}
        inputs["position_quantity"] = str(position_quantity)
        # Every value the rules read is one of the inputs: read them there (_scalar once per name).

        if inputs["warmup"] is True:
            return RulesVerdict(_hold(WARMING_UP), inputs)

        buy = inputs["buy_signal"] is True
        sell = inputs["sell_signal"] is True
        wt2 = _as_number(inputs["wt2"])
        cross_down_above_zero = inputs["wt_cross_down"] is True and wt2 is not None and wt2 > 0
        cross_up_below_zero = inputs["wt_cross_up"] is True and wt2 is not None and wt2 < 0
        values = _describe_inputs(inputs)

        if position_quantity == 0:
            if buy:
                return RulesVerdict(self._enter(TradeActionKind.LONG, f"buy signal: WT cross up oversold ({values})"), inputs)
            if sell and self.allow_shorts:
                return RulesVerdict(self._enter(TradeActionKind.SHORT, f"sell signal: WT cross down overbought ({values})"), inputs)
            return RulesVerdict(_hold(f"{HOLDING[0]} ({values})"), inputs)

        if position_quantity > 0:
            if sell:
                return RulesVerdict(_close(f"long exit: sell signal ({values})"), inputs)
            if cross_down_above_zero:
                return RulesVerdict(_close(f"long exit: WT cross down above 0 ({values})"), inputs)
            return RulesVerdict(_hold(f"{HOLDING[1]} ({values})"), inputs)

        if buy:
            return RulesVerdict(_close(f"short exit: buy signal ({values})"), inputs)
        if cross_up_below_zero:
            return RulesVerdict(_close(f"short exit: WT cross up below 0 ({values})"), inputs)
        return RulesVerdict(_hold(f"{HOLDING[-1]} ({values})"), inputs)

    def holds(self, columns: Mapping[str, Sequence[Any]]) -> RulesHolds:
        """Where ``evaluate`` holds, for every row of a history's indicator columns at once.

        ``columns`` maps each of ``INPUT_NAMES`` to its values, one per candle (numpy arrays or lists, as
        ``compute_indicators`` gives them); row ``i`` of the result is ``evaluate`` of row ``i`` with a
        flat, a long or a short position (a test keeps the two equal).
        """
        inputs = {name: _scalars(columns[name]) for name in INPUT_NAMES}
        warm, buy, sell = (_flags(columns[name], inputs[name]) for name in ("warmup", "buy_signal", "sell_signal"))
        cross_up, cross_down = (_flags(columns[name], inputs[name]) for name in ("wt_cross_up", "wt_cross_down"))
        wt2 = np.array([v if type(v) is float else np.nan for v in inputs["wt2"]], dtype=float)  # None: no number
        with np.errstate(invalid="ignore"):
            above, below = wt2 > 0, wt2 < 0
        shorting = sell if self.allow_shorts else np.zeros_like(sell)
        return RulesHolds(
            inputs=inputs, warmup=warm,
            flat=warm | ~(buy | shorting),
            long=warm | ~(sell | (cross_down & above)),
            short=warm | ~(buy | (cross_up & below)),
        )

    def _enter(self, kind: TradeActionKind, rationale: str) -> TradeAction:
        return TradeAction(
            action=kind,
            size_pct=self.size_pct,
            take_profit_pct=self.take_profit_pct,
            stop_loss_pct=self.stop_loss_pct,
            rationale=_clip(rationale),
        )


@dataclass(frozen=True)
class RulesHolds:
    """Where the rules hold over a whole history (``RulesStrategy.holds``): per row, by the position's sign."""

    inputs: dict[str, list[float | bool | None]]
    """The recorded inputs of each row, per name (``position_quantity`` is the caller's)."""
    warmup: np.ndarray
    flat: np.ndarray
    long: np.ndarray
    short: np.ndarray

    def by_sign(self, sign: int) -> np.ndarray:
        """The rows that hold with a position of this sign (0 flat, 1 long, -1 short)."""
        return self.flat if sign == 0 else (self.long if sign > 0 else self.short)

    def rationale(self, row: int, sign: int) -> str:
        """The rationale of the HOLD at ``row`` with a position of this sign (as ``evaluate`` writes it)."""
        if self.warmup[row]:
            return WARMING_UP
        inputs = self.inputs
        wt1, wt2, rsi = inputs["wt1"][row], inputs["wt2"][row], inputs["rsi"][row]
        if type(wt1) is float and type(wt2) is float and type(rsi) is float:  # the common case: one format
            return _clip(_HOLD_FORMATS[sign] % (wt1, wt2, rsi))
        return _clip(f"{HOLDING[sign]} (wt1={_one_decimal(wt1)}, wt2={_one_decimal(wt2)}, rsi={_one_decimal(rsi)})")


    def rationales(self, start: int, stop: int, sign: int) -> list[str]:
        """``rationale(row, sign)`` of the rows ``[start, stop)``, formatted in one go when all are plain."""
        inputs, count = self.inputs, stop - start
        wt1, wt2, rsi = inputs["wt1"][start:stop], inputs["wt2"][start:stop], inputs["rsi"][start:stop]
        if count > 0 and not self.warmup[start:stop].any() and {*map(type, wt1), *map(type, wt2), *map(type, rsi)} == {float}:
            texts = ("\x00".join([_HOLD_FORMATS[sign]] * count) % tuple(chain.from_iterable(zip(wt1, wt2, rsi)))).split("\x00")
            if max(map(len, texts)) <= RATIONALE_LIMIT:
                return texts
        return [self.rationale(row, sign) for row in range(start, stop)]


def _is_float_array(column: Any) -> bool:
    return getattr(column, "dtype", None) is not None and column.dtype.kind == "f"


def _scalars(column: Any) -> list[float | bool | None]:
    """``_scalar`` of every value of a column (a float array: its non-finite values become None)."""
    if _is_float_array(column):
        array = np.asarray(column, dtype=float)
        values = array.tolist()
        for i in np.flatnonzero(~np.isfinite(array)).tolist():
            values[i] = None
        return values
    if getattr(column, "dtype", None) is not None and column.dtype.kind == "b":
        return np.asarray(column).tolist()
    return [_scalar(v) for v in column]


def _flags(column: Any, scalars: list) -> np.ndarray:
    """Rows whose value is True (what ``evaluate`` reads as a set flag)."""
    if getattr(column, "dtype", None) is not None and column.dtype.kind == "b":
        return np.asarray(column, dtype=bool)
    return np.array([v is True for v in scalars], dtype=bool)


def _hold(rationale: str) -> TradeAction:
    # TradeAction(action=HOLD, size_pct=0, rationale=...) without BaseModel.__init__'s Python frame
    # (the same validation; this runs on almost every candle).
    return _validate_action({"action": TradeActionKind.HOLD, "size_pct": 0, "rationale": _clip(rationale)})


_validate_action = TradeAction.__pydantic_validator__.validate_python


def _close(rationale: str) -> TradeAction:
    # size_pct of a CLOSE is the share of the open position to close: all of it.
    return TradeAction(action=TradeActionKind.CLOSE, size_pct=100, rationale=_clip(rationale))


def _clip(text: str) -> str:
    return text if len(text) <= RATIONALE_LIMIT else text[: RATIONALE_LIMIT - 3] + "..."


def _scalar(value: object) -> float | bool | None:
    """An indicator value as a JSON-safe scalar (NaN and unknown types become None)."""
    kind = type(value)
    if kind is float:  # the common case first (what a float column's tolist() gives)
        return value if _isfinite(value) else None
    if kind is bool or value is None:
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if hasattr(value, "item"):  # a numpy scalar
        return _scalar(value.item())
    return None


def _flag(indicators: Indicators, name: str) -> bool:
    return _scalar(indicators.get(name)) is True


def _number(indicators: Indicators, name: str) -> float | None:
    value = _scalar(indicators.get(name))
    return None if isinstance(value, bool) else value


def _as_number(value: float | bool | None) -> float | None:
    """``_number`` of a value already made scalar."""
    return None if isinstance(value, bool) else value


def _describe_inputs(inputs: Mapping[str, float | bool | str | None]) -> str:
    """``_describe`` of the indicators, from their scalar inputs."""
    return f"wt1={_one_decimal(inputs['wt1'])}, wt2={_one_decimal(inputs['wt2'])}, rsi={_one_decimal(inputs['rsi'])}"


def _one_decimal(value: float | bool | str | None) -> str:
    return "n/a" if value is None or isinstance(value, bool) else f"{value:.1f}"


def _describe(indicators: Indicators) -> str:
    parts = []
    for name in ("wt1", "wt2", "rsi"):
        value = _number(indicators, name)
        parts.append(f"{name}={'n/a' if value is None else f'{value:.1f}'}")
    return ", ".join(parts)
