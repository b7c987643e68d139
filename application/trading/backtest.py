"""Backtests: the trading loop over a recorded candle history.

A backtest runs over the candles the log holds for a product and bar size
(``plan_backtest`` picks the range and the indicators' warm-up before it, or
says what the log holds when it is not enough; ``run_planned_backtest`` runs
it and records no candle again). ``run_backtest`` runs over a frame of
candles that are not in the log yet and records them as it goes.

The history's indicators are computed once, vectorised (compute_indicators over a frame,
indicator_columns over the logged candles' arrays, without importing pandas when the process has not),
and handed to the loop candle by candle; the live loop computes the same
values incrementally (IndicatorState), and a test keeps the two equal.

Every run ends: a failure, even one that came from writing a batch, records
``RunEnded(status="failed", reason)`` before the error goes on.
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from application.trading.candle_history import LoggedCandles, candles_from_columns
from application.trading.quiet_candles import QuietCandles
from application.trading.run_end import end_run_anyway
from application.trading.loop import DeterministicIds, LoopSettings, RunSummary, TradingLoop
from application.ports import DecisionModel, ExchangeGateway
from application.trading_app import TradingApplication, paused_gc
from domain.control import RunMode
from domain.indicators.cipher import IndicatorParams, IndicatorState, compute_indicators, indicator_columns
from domain.market import Candle

if TYPE_CHECKING:
    import pandas as pd


class CandleColumns(Protocol):
    """A validated candle file as columns (the candle-file adapter's ``CandleFile`` is one): its starts and its
    Decimal OHLCV columns, without a frame."""

    starts_us: Any
    values: Mapping[str, Any]

    def starts(self) -> list[datetime]: ...


class PrecomputedIndicators:
    """Indicator rows of a whole history, looked up by candle start.

    The rows become Python values a block at a time, as the loop reaches them (the same values
    ``frame[name].tolist()`` gives): a year of 1-minute candles would otherwise hold some 26 Python
    objects per candle for the whole run.
    """

    BLOCK = 4096

    def __init__(self, frame: pd.DataFrame):
        self._take({name: frame[name].to_numpy() for name in frame.columns}, _starts(frame))

    @classmethod
    def of_columns(cls, columns: Mapping[str, np.ndarray], starts: Sequence[datetime]) -> PrecomputedIndicators:
        """The rows of indicator columns (arrays, row ``i`` for the candle starting at ``starts[i]``)."""
        made = cls.__new__(cls)
        made._take(dict(columns), list(starts))
        return made

    def _take(self, columns: dict[str, np.ndarray], starts: list) -> None:
        self._columns = columns
        self._starts = starts
        self._position: dict | None = None  # built on the first out-of-order lookup only
        self._next = 0
        self._names = list(columns)
        self._block = -1
        self._rows: list[tuple] = []

    def _index_of(self, start) -> int:
        i = self._next
        if i < len(self._starts) and self._starts[i] == start:  # the loop's own order: no lookup
            return i
        if self._position is None:
            self._position = {s: n for n, s in enumerate(self._starts)}
        return self._position[start]

    def seek(self, row: int) -> None:
        """The next candle asked for is the one of ``row`` (a driver that skips candles knows where it is)."""
        self._next = row

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        i = self._index_of(candle.start)
        self._next = i + 1
        block, offset = divmod(i, self.BLOCK)
        if block != self._block:
            lo = block * self.BLOCK
            self._rows = list(zip(*(column[lo:lo + self.BLOCK].tolist() for column in self._columns.values())))
            self._block = block
        # A fresh dict per candle (the strategy may keep or change it), built in C.
        return dict(zip(self._names, self._rows[offset]))


class IncrementalIndicators:
    """Indicators updated one closed candle at a time (paper and live)."""

    def __init__(self, state: IndicatorState | None = None, params: IndicatorParams | None = None):
        self.state = state or IndicatorState(params)

    def on_candle(self, candle: Candle) -> dict[str, float | bool | None]:
        return self.state.update(candle)


def candles_of(frame: pd.DataFrame | CandleColumns, product: str, granularity: str) -> list[Candle]:
    """Candle objects from a frame indexed by UTC start with Decimal OHLCV columns, or from a validated
    candle file itself (its starts and Decimal columns, without making its frame)."""
    names = ("open", "high", "low", "close", "volume")
    if hasattr(frame, "starts_us"):
        return candles_from_columns(product, granularity, frame.starts(), [frame.values[c].tolist() for c in names])
    return candles_from_columns(product, granularity, _starts(frame), [frame[c].tolist() for c in names])



def _starts(frame: pd.DataFrame) -> list:
    """The index as datetimes (one vectorised conversion when it is a DatetimeIndex)."""
    import pandas as pd

    if isinstance(frame.index, pd.DatetimeIndex):
        return list(frame.index.to_pydatetime())
    return [ts.to_pydatetime() for ts in frame.index]


def frame_of(candles: Sequence[Candle], floats: bool = False) -> pd.DataFrame:
    """Candles as the frame compute_indicators reads: Decimal OHLCV on a UTC DatetimeIndex (``floats``: the
    float64 values compute_indicators converts them to, without a column of Decimal objects)."""
    import pandas as pd

    index = pd.DatetimeIndex(list(map(attrgetter("start"), candles)), name="start")
    if index.tz is None:
        index = index.tz_localize("UTC")
    names = ("open", "high", "low", "close", "volume")
    columns = zip(*map(attrgetter(*names), candles)) if candles else ([] for _ in names)
    if floats:
        made = {name: np.fromiter(map(float, column), np.float64, len(candles)) for name, column in zip(names, columns)}
    else:
        made = dict(zip(names, map(list, columns)))
    return pd.DataFrame(made, index=index.tz_convert("UTC"))


def candle_floats(candles: Sequence[Candle]) -> tuple[np.ndarray, ...]:
    """open/high/low/close/volume of the candles as float64 arrays (each Decimal's nearest float)."""
    n = len(candles)
    return tuple(np.fromiter(map(float, map(attrgetter(name), candles)), np.float64, n)
                 for name in ("open", "high", "low", "close", "volume"))


def _pandas_loaded() -> bool:
    """Whether this process imported pandas already (then its kernels cost less than kernels.py's loops)."""
    return "pandas" in sys.modules


def _frame(columns: Mapping[str, np.ndarray], starts: list) -> pd.DataFrame:
    import pandas as pd

    index = pd.DatetimeIndex(starts, name="start")
    return pd.DataFrame(dict(columns), index=index.tz_localize("UTC") if index.tz is None else index)


class NotEnoughCandles(ValueError):
    """The log holds no candles, or too few, for the range and the indicators' warm-up."""

    def __init__(self, logged: LoggedCandles, why: str):
        self.logged = logged
        super().__init__(f"{why}; {logged.describe()}")


@dataclass
class BacktestPlan:
    """What a backtest over the log runs on: the range's candles and the warm-up candles before it."""

    logged: LoggedCandles
    candles: list[Candle]
    warmup: list[Candle] = field(default_factory=list)


def plan_backtest(logged: LoggedCandles, start: datetime | None, end: datetime | None, warmup_bars: int) -> BacktestPlan:
    """The candles of ``[start, end)`` and up to ``warmup_bars`` before them; NotEnoughCandles when the
    range is empty or the range and its warm-up together hold no more than ``warmup_bars`` candles."""
    candles = logged.between(start, end)
    if start is None and end is None:
        span = "in the log"
    else:
        span = f"between {start.isoformat() if start else 'the first candle'} and {end.isoformat() if end else 'the last'}"
    if not candles:
        raise NotEnoughCandles(logged, f"no {logged.product} {logged.granularity} candles {span}")
    warmup = logged.before(candles[0].start, warmup_bars)
    if len(warmup) + len(candles) <= warmup_bars:
        raise NotEnoughCandles(
            logged, f"too few {logged.product} {logged.granularity} candles {span}: {len(candles)} in the range and "
                    f"{len(warmup)} before it, the indicators need more than {warmup_bars}")
    return BacktestPlan(logged, candles, warmup)


def run_planned_backtest(
    store: TradingApplication,
    plan: BacktestPlan,
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
    """Run the loop over the plan's candles, which are in the log already: no CandleClosed is written.

    The indicators are computed from the candles' float values as arrays (``indicator_columns``), by pandas'
    kernels when pandas is loaded already and otherwise without importing it (the same values, bit for bit)."""
    history = plan.warmup + plan.candles
    starts = list(map(attrgetter("start"), history))
    read = plan.logged.floats_of(history)  # the doubles the read parsed beside the Decimals, when it did
    floats = candle_floats(history) if read is None else tuple(np.frombuffer(column, np.float64) for column in read)
    columns = indicator_columns(floats, starts, indicator_params, use_pandas=_pandas_loaded())
    if QuietCandles.drives(strategy):  # the rules read their inputs only: the other columns are not kept for the run
        columns = {name: columns[name] for name in QuietCandles.INPUTS}
    loop = TradingLoop(store, exchange, strategy, PrecomputedIndicators.of_columns(columns, starts), settings, run_id,
                       DeterministicIds(run_id), RunMode.BACKTEST, record_candles=False)
    loop.warm(plan.warmup)
    # QuietCandles reads the rules' inputs as a frame's columns; without pandas loaded, as the arrays themselves.
    table = _frame(columns, starts) if "pandas" in sys.modules else columns
    quiet = QuietCandles.of(loop, table, len(plan.warmup))
    return _drive(loop, store, plan.candles, initial_balance, config_hash, code_version, progress, quiet)


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
    return _drive(loop, store, candles, initial_balance, config_hash, code_version, progress)


def _drive(loop: TradingLoop, store: TradingApplication, candles: Sequence[Candle], initial_balance: Decimal,
           config_hash: str, code_version: str, progress: Callable[[int], None] | None,
           quiet: QuietCandles | None = None) -> RunSummary:
    loop.start(candles[0].start, initial_balance, config_hash, code_version, candles[0].start, candles[-1].end)
    loop.flush()  # the run is in the log at once: killed at any later moment, the next writer ends it as abandoned
    status, reason = "completed", "end of data"
    ticks = _Ticks(progress, 1000 if quiet is None else 50_000)  # the rules leave no cycles behind
    try:
        # Each candle allocates some hundred short-lived objects, none in a cycle; the cyclic
        # collector would otherwise run every few candles and now and then walk the whole history.
        # The young generations are still collected every 1,000 candles (a strategy that does I/O
        # may leave cycles behind).
        with paused_gc():
            if quiet is not None:  # the rules over recorded candles: the quiet ones skipped (quiet_candles.py)
                quiet.drive(candles, ticks)
            else:
                for candle in candles:
                    loop.step(candle)
                    ticks(1)
        loop.flush()  # the last batch: a store that refuses it fails the run here, not in finish
    except BaseException as exc:
        status, reason = ("stopped", "interrupted") if isinstance(exc, KeyboardInterrupt) else ("failed", repr(exc)[:300])
        at = candles[loop.summary.candles - 1].end if loop.summary.candles else candles[0].start
        end_run_anyway(loop, store, at, status, reason, exc)
        raise
    if progress is not None:
        progress(len(candles) % 500)
    return loop.finish(candles[-1].end, status, reason)


class _Ticks:
    """Candles done: the young generations collected every ``collect_every``, progress reported every 500."""

    def __init__(self, progress: Callable[[int], None] | None, collect_every: int):
        self.progress = progress
        self.collect_every = collect_every
        self.done = 0

    def __call__(self, count: int) -> None:
        before, self.done = self.done, self.done + count
        if before // self.collect_every != self.done // self.collect_every:
            gc.collect(1)
        if self.progress is not None:
            for _ in range(self.done // 500 - before // 500):
                self.progress(500)
