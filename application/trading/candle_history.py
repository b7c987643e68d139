"""The log as the market-data catalogue: which candles it holds, and adding more without repeats.

``logged_candles`` reads the ``CandleClosed``/``CandleCorrected`` events of one product and bar
size back from the log (the newest correction of a candle wins), so backtests and what-ifs run
over exactly what was recorded. ``import_candles`` adds candles from a file or a download: a
candle already recorded is skipped (compared with the log, no per-candle lookup), a different one
is refused (or, on request, recorded as a correction).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from functools import lru_cache
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from itertools import islice, repeat
from operator import attrgetter, is_, lt
from weakref import WeakKeyDictionary

from eventsourcing.utils import get_topic

from application.trading_app import CandleRecording, TradingApplication, paused_gc
from domain.events import EventMeta
from domain.market import Candle, CandleClosed, CandleConflict, CandleCorrected, granularity_delta

CANDLE_TOPICS = (get_topic(CandleClosed), get_topic(CandleCorrected))
IMPORT_BATCH = 20_000
"""Candles per transaction when importing (the store's ``batch_size`` is for reading and live feeds)."""


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
    value_floats: list[array] | None = field(default=None, repr=False, compare=False)
    """When the read made them: open/high/low/close/volume of ``candles`` as arrays of doubles (each value's
    nearest float, as ``float(Decimal)`` gives it), parsed from the stored text beside the Decimals."""

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

    def floats_of(self, run: Sequence[Candle]) -> list[array] | None:
        """``value_floats`` of ``run`` when it is a run of ``candles`` (as ``between`` and ``before`` give them, or
        the two joined), else None."""
        floats, candles = self.value_floats, self.candles
        if floats is None or not run or len(floats[0]) != len(candles):
            return None
        first = bisect_left(candles, run[0].start, key=_start_of)
        end = first + len(run)
        if end > len(candles) or not all(map(is_, run, candles[first:end])):
            return None
        return [column[first:end] for column in floats]

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
    """Every recorded candle of ``product`` at ``granularity``, the newest correction winning.

    The candle events are read a page at a time as the columns a candle needs (their stored JSON, as
    the events write it), not as one event model each; a page that is not plain current-schema JSON
    (an older ``class_version``, another encoding) is decoded by the store's mapper instead.
    """
    found: list[Candle] = []
    floats: list[array] | None = [array("d") for _ in range(5)]  # while every page read gives them
    after, page = 0, 20_000
    handed = _IMPORTED.get(store, {}).pop((product, granularity), None)
    if handed is not None:  # what an import in this process just left: only later candle events are read
        after, found = handed
        floats = None
    while True:
        rows = store.read_stored(after, page, CANDLE_TOPICS)
        if not rows:
            break
        with paused_gc():  # tens of thousands of small acyclic objects per page (see paused_gc)
            candles, page_floats = _page_read(store, rows, product, granularity)
            found.extend(candles)
        if floats is not None and page_floats is not None:
            list(map(array.extend, floats, page_floats))
        else:
            floats = None
        if len(rows) < page:
            break
        after = rows[-1][0]
    starts = list(map(_start_of, found))
    if all(map(lt, starts, islice(starts, 1, None))):  # recorded in order, each once: nothing to sort out
        return LoggedCandles(product, granularity, found, floats)
    by_start = dict(zip(starts, found))  # the newest (latest recorded) of a start wins
    return LoggedCandles(product, granularity, [by_start[s] for s in sorted(by_start)])


_new = object.__new__
_set = object.__setattr__
_start_of = attrgetter("start")


def candles_from_columns(product: str, granularity: str, starts: Sequence[datetime],
                         columns: Sequence[Iterable[Decimal]]) -> list[Candle]:
    """Candles of one product and bar size from their starts and open/high/low/close/volume columns.

    Candle is a frozen dataclass without checks of its own: its __init__ would set each field through the
    frozen guard; here each candle gets its fields whole, as the same dict an __init__ leaves (a dict display
    of the fields in _CANDLE_FIELDS' order: a third fewer instructions than dict(zip(...)) per candle)."""
    with paused_gc():  # a dict per candle, none in a cycle (see paused_gc)
        made = [_new(Candle) for _ in range(len(starts))]
        fields = [{"product": product, "granularity": granularity, "start": start,
                   "open": open_, "high": high, "low": low, "close": close, "volume": volume}
                  for start, open_, high, low, close, volume in zip(starts, *columns)]
        list(map(_set, made, repeat("__dict__"), fields))
    return made


def _page_read(store: TradingApplication, rows: list, product: str,
               granularity: str) -> tuple[list[Candle], list[array] | None]:
    """The page's candles of the series, with their values as doubles when read from the stored text (float of
    the text: half the instructions of float of the Decimal, the same double)."""
    try:
        if {row[1] for row in rows} - set(CANDLE_TOPICS):
            raise ValueError("not candle events")
        # The fields a candle needs, in the order the events write them (envelope first, then these); a
        # page where any event does not read so (another layout, an escape) is decoded by the mapper.
        states = b"".join(row[2] for row in rows)
        if b'"class_version"' in states:  # an older schema: upcast by the mapper
            raise ValueError("not the current schemas")
        text = states.decode()
        # A row matches at most once (a key's quotes inside a JSON string are escaped): as many matches of this
        # series' own pattern as rows means every row is of this series, read so; otherwise every row's names.
        values = _series_json(product, granularity).findall(text)
        if len(values) != len(rows):
            values = _CANDLE_JSON.findall(text)
            if len(values) != len(rows):
                raise ValueError("not the current schemas")
            values = [v[2:] for v in values if v[:2] == (product, granularity)]
        if not values:
            return [], [array("d") for _ in range(5)]
        starts, *ohlcv = zip(*values)
        starts = list(map(datetime.fromisoformat, starts))
        if {s.tzinfo for s in starts} != {timezone.utc}:
            starts = [s.astimezone(timezone.utc) for s in starts]
        floats = [array("d", map(float, column)) for column in ohlcv]
        return candles_from_columns(product, granularity, starts, [map(Decimal, column) for column in ohlcv]), floats
    except (ValueError, KeyError, TypeError, ArithmeticError):
        decoded = store.mapper.decode_rows(rows, lambda nid, topic, event: event) if hasattr(store.mapper, "decode_rows") \
            else [store.mapper.decode(topic, state) for _, topic, state in rows]
        return [Candle(product, granularity, e.start, e.open, e.high, e.low, e.close, e.volume)
                for e in decoded if e.product == product and e.granularity == granularity], None


_CANDLE_FIELDS = ("product", "granularity", "start", "open", "high", "low", "close", "volume")
_CANDLE_JSON = re.compile(",".join(f'"{name}":"([^"\\\\]*)"' for name in _CANDLE_FIELDS))


@lru_cache(maxsize=64)
def _series_json(product: str, granularity: str) -> re.Pattern:
    """_CANDLE_JSON with this product and bar size written out (as JSON writes names without quotes, backslashes
    or control characters; other names never match): two strings fewer made per candle."""
    if re.search(r'["\\\x00-\x1f]', product + granularity):
        return re.compile("(?!)")
    return re.compile(re.escape(f'"product":"{product}","granularity":"{granularity}",')
                      + ",".join(f'"{name}":"([^"\\\\]*)"' for name in _CANDLE_FIELDS[2:]))


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
    head = None
    if logged is None:
        head = store.max_notification_id()  # every candle event up to here is in what is read next
        logged = logged_candles(store, candles[0].product, candles[0].granularity)
    fresh: list[Candle] = []
    differing: list[Candle] = []
    with paused_gc():  # no collection walks the histories while they are compared (see paused_gc)
        known: dict[datetime, Candle] = {c.start: c for c in logged.candles}
        for candle in candles:
            recorded = known.get(candle.start)
            if recorded is None:
                fresh.append(candle)
                known[candle.start] = candle
            elif recorded.values() == candle.values():
                result.duplicates += 1
            elif on_conflict == "correct":
                differing.append(candle)
                known[candle.start] = candle
            else:
                result.conflicts.append(CandleConflict(candle, recorded.values()))
        del known
    for batch, policy in ((fresh, "refuse"), (differing, "correct")):
        if batch:
            # Candles the log lacked a moment ago: a transaction per IMPORT_BATCH of them (a crash loses at
            # most that batch, which the next import records); one already recorded by then is sorted out.
            done = store.record_candles(batch, meta, on_conflict=policy, batch_size=IMPORT_BATCH)
            result.recorded += done.recorded
            result.corrected += done.corrected
            result.duplicates += done.duplicates
            result.conflicts.extend(done.conflicts)
    if head is not None and fresh and not differing and result.recorded == len(fresh):
        _hand_over(store, logged, fresh, head)
    return result


_IMPORTED: WeakKeyDictionary[TradingApplication, dict[tuple[str, str], tuple[int, list[Candle]]]] = WeakKeyDictionary()
"""Per store: the series an import in this process last completed, with the notification id the log is
complete up to in it; the next ``logged_candles`` of that series takes it (once) and reads only the candle
events after that id."""


def _hand_over(store: TradingApplication, before: LoggedCandles, recorded: list[Candle], head: int) -> None:
    """Hand the series an import just completed to the next read of it instead of that read decoding every
    candle back from the log: only when the log's events after ``head`` (its last id before ``before`` was
    read) are exactly the ``recorded`` ones, so that no other writer's event can be missing from it."""
    now = store.max_notification_id()
    if now - head != len(recorded) or {(c.product, c.granularity) for c in recorded} != {(before.product, before.granularity)}:
        return
    series = before.candles + recorded  # ``recorded``: starts the log lacked, each once
    series.sort(key=_start_of)
    _IMPORTED[store] = {(before.product, before.granularity): (now, series)}
