"""The log as the market-data catalogue: which candles it holds, and adding more without repeats.

``logged_candles`` reads the ``CandleClosed``/``CandleCorrected`` events of one product and bar
size back from the log (the newest correction of a candle wins), so backtests and what-ifs run
over exactly what was recorded. ``import_candles`` adds candles from a file or a download: a
candle already recorded is skipped (compared with the log, no per-candle lookup), a different one
is refused (or, on request, recorded as a correction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from eventsourcing.utils import get_topic

from application.trading_app import CandleRecording, TradingApplication
from domain.events import EventMeta
from domain.market import Candle, CandleClosed, CandleConflict, CandleCorrected, granularity_delta

CANDLE_TOPICS = (get_topic(CandleClosed), get_topic(CandleCorrected))


@dataclass(frozen=True)
class CandleGap:
    """Bars missing between two recorded candles."""

    after: datetime  # end of the candle before the gap
    before: datetime  # start of the candle after it
    missing_bars: int


@dataclass
class LoggedCandles:
    """The candles of one product and bar size in the log, oldest first."""

    product: str
    granularity: str
    candles: list[Candle] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.candles)

    @property
    def first(self) -> datetime | None:
        return self.candles[0].start if self.candles else None

    @property
    def last(self) -> datetime | None:
        return self.candles[-1].start if self.candles else None

    def gaps(self) -> list[CandleGap]:
        """Every run of missing bars between the first and the last candle."""
        step = granularity_delta(self.granularity)
        out = []
        for before, after in zip(self.candles, self.candles[1:]):
            if after.start > before.end:
                out.append(CandleGap(before.end, after.start, int((after.start - before.end) / step)))
        return out

    def between(self, start: datetime | None, end: datetime | None) -> list[Candle]:
        """Candles with ``start <= candle.start < end`` (an open bound takes everything on that side)."""
        return [c for c in self.candles if (start is None or c.start >= start) and (end is None or c.start < end)]

    def before(self, start: datetime, count: int) -> list[Candle]:
        """The last ``count`` candles that start before ``start`` (the indicators' warm-up)."""
        earlier = [c for c in self.candles if c.start < start]
        return earlier[-count:] if count > 0 else []

    def describe(self) -> str:
        """What the log holds, for people: first, last, count, gaps."""
        if not self.candles:
            return f"the log holds no {self.product} {self.granularity} candles"
        gaps = self.gaps()
        missing = sum(g.missing_bars for g in gaps)
        return (f"the log holds {self.count:,} {self.product} {self.granularity} candles from "
                f"{self.first.isoformat()} to {self.last.isoformat()} (last start), "
                f"{len(gaps)} gap(s){f' ({missing:,} bars missing)' if gaps else ''}")


def logged_candles(store: TradingApplication, product: str, granularity: str) -> LoggedCandles:
    """Every recorded candle of ``product`` at ``granularity``, the newest correction winning."""
    by_start: dict[datetime, Candle] = {}
    for logged in store.iter_log(topics=CANDLE_TOPICS, page=5000):
        e = logged.event
        if e.product != product or e.granularity != granularity:
            continue
        by_start[e.start] = Candle(product, granularity, e.start, e.open, e.high, e.low, e.close, e.volume)
    return LoggedCandles(product, granularity, [by_start[s] for s in sorted(by_start)])


def logged_series(store: TradingApplication) -> dict[tuple[str, str], int]:
    """Every (product, bar size) the log holds candles of, with how many (the market-data catalogue)."""
    starts: dict[tuple[str, str], set[datetime]] = {}
    for logged in store.iter_log(topics=CANDLE_TOPICS, page=5000):
        e = logged.event
        starts.setdefault((e.product, e.granularity), set()).add(e.start)
    return {key: len(found) for key, found in sorted(starts.items())}


def import_candles(store: TradingApplication, candles: Sequence[Candle], meta: EventMeta,
                   on_conflict: str = "refuse", logged: LoggedCandles | None = None) -> CandleRecording:
    """Record the candles the log lacks; identical ones are duplicates, differing ones refused or corrected.

    The candles are of one product and bar size; ``logged`` (what the log holds of them) is read
    when not given.
    """
    if on_conflict not in ("refuse", "correct"):
        raise ValueError(f"on_conflict must be 'refuse' or 'correct', not {on_conflict!r}")
    result = CandleRecording()
    if not candles:
        return result
    if logged is None:
        logged = logged_candles(store, candles[0].product, candles[0].granularity)
    known: dict[datetime, tuple[Decimal, ...]] = {c.start: c.values() for c in logged.candles}
    fresh: list[Candle] = []
    differing: list[Candle] = []
    for candle in candles:
        recorded = known.get(candle.start)
        if recorded is None:
            fresh.append(candle)
            known[candle.start] = candle.values()
        elif recorded == candle.values():
            result.duplicates += 1
        elif on_conflict == "correct":
            differing.append(candle)
            known[candle.start] = candle.values()
        else:
            result.conflicts.append(CandleConflict(candle, recorded))
    for batch, policy in ((fresh, "refuse"), (differing, "correct")):
        if batch:
            done = store.record_candles(batch, meta, on_conflict=policy)
            result.recorded += done.recorded
            result.corrected += done.corrected
            result.duplicates += done.duplicates
            result.conflicts.extend(done.conflicts)
    return result

