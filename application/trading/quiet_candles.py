"""A backtest of the rules strategy that runs the sequential loop only where a position, an order, a halt
or a signal makes it matter.

The rules' HOLDs are known for the whole history at once (``RulesStrategy.holds``, vectorised over the
indicator columns and kept equal to ``evaluate`` by a test). Each candle the loop advances through
(``TradingLoop.advance``: fills, triggers, the equity point, the breakers) is decided by the strategy
itself when the rules act there (``TradingLoop.decide``), and otherwise recorded as a HOLD from the
columns (``domain.hold_decisions.HoldDecisions``, validated per batch) instead of one model per candle.

While the run is flat, the exchange idle and the halt state cannot change, the candles up to the next
entry signal change nothing but the log and the book's days, so the loop does not advance through each:

- the equity is the cash, constant, so the book's equity points repeat one figure: only the first point
  of each UTC day and the points within the rapid-loss window of the stretch's last candle are made
  (``RunBook.decided``); the others would leave nothing the book keeps;
- the breakers cannot trip: they did not at the stretch's first candle, which the loop advanced through
  unhalted at this equity, and with a constant equity the rapid-loss drop can only shrink as older points
  leave the window while the loss streak and the drawdown stay as they were; a halt that waits for an
  operator (the drawdown breaker's) does nothing per candle;
- the exchange has nothing to fill or trigger (``PaperExchange.idle``).

A halt that waits for an operator (the drawdown breaker's P0 in a backtest: nothing lifts it) keeps every
later entry refused: the entry candle itself is advanced, and the stretch after it starts at the very next
candle. An entry signal while halted (any halt) is evaluated by the rules and judged by risk as ``decide``
would (``TradingLoop.verdict_on``); when the refusal is all there is to it (``records_only``), its
DecisionMade and RiskAssessed go into column batches (domain/refused_entries.py) instead of two models.

The events are those the sequential loop writes, in the same order, with the same ids
(tests/integration/test_backtest_pinned.py, and tests/integration/test_quiet_candles.py against the
sequential loop over the same plans).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np

from application.trading.loop import TradingLoop
from domain.control import RunMode
from domain.decision import TradeActionKind
from domain.market import Candle
from domain.strategy_rules import INPUT_NAMES, RulesHolds, RulesStrategy


_ENTRIES = (TradeActionKind.LONG, TradeActionKind.SHORT)

BATCH_CANDLES = 25_000
"""Candles per transaction at least: a quiet candle is one HOLD row, so a transaction per ``flush_every``
(500 for `tradecore backtest`) would spend most of the run committing. A backtest's exchange is in memory
and nothing outside waits on its log; a run killed mid-batch loses that batch, and the next writer ends
it as abandoned, as before (application/trading/dead_runs.py). The durability settings are unchanged."""


class QuietCandles:
    """Drives a backtest's loop over its candles, skipping the quiet ones (see the module's docstring)."""

    def __init__(self, loop: TradingLoop, holds: RulesHolds, first_row: int):
        self.loop = loop
        self.holds = holds
        self.first_row = first_row  # the indicator row of the first candle (the warm-up comes before it)
        self._acts = np.flatnonzero(~holds.flat)  # the rows where the rules enter from flat

    INPUTS = INPUT_NAMES  # the indicator columns the rules read

    @staticmethod
    def drives(strategy: object) -> bool:
        """Whether this driver knows ``strategy`` (the rules strategy itself, not a subclass)."""
        return type(strategy) is RulesStrategy

    @classmethod
    def of(cls, loop: TradingLoop, indicators: Mapping[str, Any], first_row: int) -> QuietCandles | None:
        """The driver for a backtest of the rules strategy over recorded candles; None when the loop's
        strategy, exchange or ids are not ones it knows to be quiet (the loop then steps every candle)."""
        if (not cls.drives(loop.strategy) or loop.mode is not RunMode.BACKTEST or loop.record_candles
                or not callable(getattr(loop.exchange, "idle", None)) or not hasattr(loop.ids, "new_int")):
            return None
        holds = loop.strategy.holds({name: np.asarray(indicators[name]) for name in INPUT_NAMES})
        loop.settings = replace(loop.settings, flush_every=max(loop.settings.flush_every, BATCH_CANDLES))
        return cls(loop, holds, first_row)

    def drive(self, candles: Sequence[Candle], tick: Callable[[int], None]) -> None:
        """Every candle, in order; ``tick(n)`` after each ``n`` done."""
        loop, holds, product = self.loop, self.holds, self.loop.settings.product
        idle = loop.exchange.idle
        seek = getattr(loop.indicators, "seek", None)
        n, i = len(candles), 0
        while i < n:
            candle, row = candles[i], i + self.first_row
            was_halted = loop.halted_now
            equity = loop.advance(candle)
            quantity = loop.portfolio.position(product).quantity
            sign = (quantity > 0) - (quantity < 0)
            if not holds.by_sign(sign)[row]:
                if seek is not None:
                    seek(row)  # the indicators' row of this candle: no lookup by time
                # An entry while halted is looked at first (the indicators read again by row if the loop decides).
                if not (seek is not None and loop.halted_now and self._refused_entry(candle, row, quantity, equity)):
                    if seek is not None:
                        seek(row)
                    loop.decide(candle, equity)
                i += 1
                tick(1)
                if sign == 0 and loop.halt_holds and idle(product):
                    # An entry refused while the run waits for an operator: still flat and idle, and no candle
                    # lifts that halt, so the quiet stretch starts at the next candle (not one candle later).
                    left = loop.portfolio.position(product).quantity
                    stop = min(n, self._next_entry(row + 1) - self.first_row)
                    if left == 0 and stop > i:
                        self._fast_forward(candles, i, stop, str(left))
                        tick(stop - i)
                        i = stop
                continue
            text = str(quantity)
            self._hold(candle, row, text, holds.rationale(row, sign))
            loop.candle_done()
            i += 1
            tick(1)
            quiet_halt = loop.halt_holds or not (was_halted or loop.halted_now)
            if sign == 0 and quiet_halt and idle(product):
                stop = min(n, self._next_entry(row + 1) - self.first_row)
                if stop > i:
                    self._fast_forward(candles, i, stop, text)
                    tick(stop - i)
                    i = stop

    def _refused_entry(self, candle: Candle, row: int, quantity: Decimal, equity: Decimal) -> bool:
        """The candle's decision while halted, when risk refuses it and records only (``records_only``): recorded
        as ``decide`` records it, in column batches (``TradingLoop.record_refused_entry``); False (nothing
        done) for any other decision, which the loop then decides itself."""
        loop = self.loop
        decided = loop.strategy.evaluate(loop.indicators.on_candle(candle), quantity)  # what ``decide`` asks it
        action = decided.action
        if action.action not in _ENTRIES:
            return False
        verdict = loop.verdict_on(action, candle, equity)[1]
        if not loop.records_only(verdict):
            return False
        loop.record_refused_entry(loop.ids.new_int(), candle, row, self.holds.inputs, decided.inputs["position_quantity"],
                                  action, verdict)
        loop.candle_done()
        return True

    def _hold(self, candle: Candle, row: int, quantity: str, rationale: str) -> None:
        loop = self.loop
        loop.hold_batch(self.holds.inputs).add(loop.ids.new_int(), candle.end, candle.start, row, quantity, rationale)
        loop.summary.decisions += 1

    def _next_entry(self, row: int) -> int:
        acts = self._acts
        at = int(np.searchsorted(acts, row))
        return int(acts[at]) if at < len(acts) else 1 << 62

    def _fast_forward(self, candles: Sequence[Candle], start: int, stop: int, quantity: str) -> None:
        """Candles ``[start, stop)`` of a flat, idle, unchanging run: HOLDs, the book's days and its window."""
        loop, holds, first_row = self.loop, self.holds, self.first_row
        book, summary = loop.book, loop.summary
        span = candles[start:stop]
        bar = span[0].end - span[0].start
        starts = [c.start for c in span]
        ends = [s + bar for s in starts]
        book.unchanged_points(ends)
        book.mark(loop.settings.product, span[-1].close)
        inputs = holds.inputs
        k = start
        while k < stop:
            end = min(stop, k + loop.flush_room)
            rows = range(k + first_row, end + first_row)
            loop.hold_batch(inputs).extend(loop.ids.new_ints(end - k), ends[k - start:end - start],
                                           starts[k - start:end - start], rows, quantity,
                                           holds.rationales(k + first_row, end + first_row, 0))
            summary.candles += end - k
            summary.decisions += end - k
            loop.candle_done(end - k)
            k = end
