"""Backtests: the trading loop over a recorded candle history.

The history's indicators are computed once, vectorised (compute_indicators),
and handed to the loop candle by candle; the live loop computes the same
values incrementally (IndicatorState), and a test keeps the two equal.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable
from decimal import Decimal

import pandas as pd

from application.trading.loop import DeterministicIds, LoopSettings, RunSummary, TradingLoop
from application.ports import DecisionModel, ExchangeGateway
from application.trading_app import TradingApplication, paused_gc
from domain.control import RunMode
from domain.indicators.cipher import IndicatorParams, IndicatorState, compute_indicators
from domain.market import Candle


class PrecomputedIndicators:
    """Indicator rows of a whole history, looked up by candle start."""

    def __init__(self, frame: pd.DataFrame):
        self._position = {start: i for i, start in enumerate(_starts(frame))}
        self._names = list(frame.columns)
        self._rows = list(zip(*(frame[name].tolist() for name in self._names)))

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        # A fresh dict per candle (the strategy may keep or change it), built in C.
        return dict(zip(self._names, self._rows[self._position[candle.start]]))


class IncrementalIndicators:
    """Indicators updated one closed candle at a time (paper and live)."""

    def __init__(self, state: IndicatorState | None = None, params: IndicatorParams | None = None):
        self.state = state or IndicatorState(params)

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        return self.state.update(candle)


def candles_of(frame: pd.DataFrame, product: str, granularity: str) -> list[Candle]:
    """Candle objects from a frame indexed by UTC start with Decimal OHLCV columns."""
    starts = _starts(frame)
    columns = [frame[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    return [Candle(product, granularity, start, *values) for start, *values in zip(starts, *columns)]


def _starts(frame: pd.DataFrame) -> list:
    """The index as datetimes (one vectorised conversion when it is a DatetimeIndex)."""
    if isinstance(frame.index, pd.DatetimeIndex):
        return list(frame.index.to_pydatetime())
    return [ts.to_pydatetime() for ts in frame.index]


def run_backtest(
    store: TradingApplication,
    frame: pd.DataFrame,
    *,
    exchange: ExchangeGateway,
    strategy: DecisionModel,
    settings: LoopSettings,
    initial_balance: Decimal,
    config_hash: str,
    code_version: str,
    run_id: uuid.UUID,
    progress: Callable[[int], None] | None = None,
    indicator_params: IndicatorParams | None = None,
) -> RunSummary:
    """Run the loop over every candle of ``frame``; every event goes to ``store``."""
    if frame.empty:
        raise ValueError("no candles to backtest (check --from/--to against the data's range)")
    candles = candles_of(frame, settings.product, settings.granularity)
    indicators = PrecomputedIndicators(compute_indicators(frame, indicator_params))
    loop = TradingLoop(store, exchange, strategy, indicators, settings, run_id, DeterministicIds(run_id), RunMode.BACKTEST)
    loop.start(candles[0].start, initial_balance, config_hash, code_version, candles[0].start, candles[-1].end)
    status, reason = "completed", "end of data"
    try:
        # Each candle allocates some hundred short-lived objects, none in a cycle; the cyclic
        # collector would otherwise run every few candles and now and then walk the whole history.
        # The young generations are still collected every 1,000 candles (a strategy that does I/O
        # may leave cycles behind).
        with paused_gc():
            for i, candle in enumerate(candles, 1):
                loop.step(candle)
                if i % 1000 == 0:
                    gc.collect(1)
                if progress is not None and i % 500 == 0:
                    progress(500)
    except BaseException as exc:
        status, reason = ("stopped", "interrupted") if isinstance(exc, KeyboardInterrupt) else ("failed", repr(exc)[:300])
        at = candles[loop.summary.candles - 1].end if loop.summary.candles else candles[0].start
        try:
            loop.finish(at, status, reason)
        except Exception as secondary:  # e.g. the store itself failed: report the first error, not this one
            exc.add_note(f"recording RunEnded also failed: {secondary!r}")
        raise
    if progress is not None:
        progress(len(candles) % 500)
    return loop.finish(candles[-1].end, status, reason)
