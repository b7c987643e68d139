"""Which rows of a candle file are candles: "corrupt data is worse than no data".

Every row that cannot be trusted is returned as a :class:`RejectedRow` naming the field and value,
never silently repaired. Decimals are built from the text of each value, never through float; floats
are used only to vectorise the checks, and ties that float precision cannot order are re-checked
exactly. Duplicates: the same start with equal values is dropped and counted; the same start with
different values keeps the first in file order and rejects the later ones. Gaps between kept
candles longer than one bar are reported, not filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from domain.market import GRANULARITIES
from infrastructure.candles.formats import PRICES, VALUES, RawRows, RejectedRow, parse_times

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CandleFile", "CandleGap", "validate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CandleGap:
    """Consecutive candles further apart than one granularity: ``missing_bars`` are absent."""

    after: datetime
    before: datetime
    missing_bars: int


@dataclass(frozen=True, eq=False)
class CandleFile:
    """Validated candles (``frame``: index ``start``, UTC, ascending, unique; Decimal columns) and the report.

    The candles are kept as their starts (epoch microseconds, ascending) and Decimal columns; ``frame`` is
    made from them when first asked for, and ``candles()`` makes Candle objects without pandas."""

    starts_us: np.ndarray
    values: dict[str, np.ndarray]  # open/high/low/close/volume: Decimal objects, in start order
    rejected: list[RejectedRow]
    duplicates: int
    gaps: list[CandleGap]
    source_rows: int

    @cached_property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        index = pd.DatetimeIndex(self.starts_us.astype("datetime64[us]"), name="start").tz_localize("UTC")
        return pd.DataFrame({name: self.values[name] for name in VALUES}, index=index)

    def starts(self) -> list[datetime]:
        """The candles' starts as UTC datetimes (whole seconds, as every bar size's are: made in C, half the CPU)."""
        micros = self.starts_us
        if not (micros % 1_000_000).any():
            return list(map(datetime.fromtimestamp, (micros // 1_000_000).tolist(), repeat(UTC)))
        return [_EPOCH + timedelta(microseconds=m) for m in micros.tolist()]


def _shown(values: pd.Series, i: int) -> str:
    import pandas as pd

    value = values.iat[i]
    return "" if pd.isna(value) else str(value)


class _Numbers:
    """One value column with each distinct text parsed once: prices repeat a lot."""

    def __init__(self, text: pd.Series) -> None:
        import pandas as pd

        self.codes, uniques = pd.factorize(text)
        self.texts = np.asarray(uniques, dtype=object)
        floats = _to_floats(self.texts)
        self._exact = np.full(len(self.texts), None, dtype=object)
        finite = np.flatnonzero(np.isfinite(floats))
        try:
            self._exact[finite] = list(map(Decimal, self.texts[finite]))
        except InvalidOperation:  # a text float parsing accepted but Decimal does not
            for j in finite:
                try:
                    self._exact[j] = Decimal(self.texts[j])
                except InvalidOperation:
                    floats[j] = np.nan
        self.floats = floats[self.codes]
        self.finite = np.isfinite(self.floats)

    def text(self, i: int) -> str:
        return self.texts[self.codes[i]]

    def exact(self, rows):
        return self._exact[self.codes[rows]]


def _to_floats(texts: np.ndarray) -> np.ndarray:
    """Float of each text (NaN where it is not a number), only to vectorise the checks."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(pa.array(texts, type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # some text is not a plain number
        import pandas as pd

        numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
        return np.array(numbers.to_numpy(dtype="float64", na_value=np.nan))


def validate(raw: RawRows, step_us: int, granularity: str) -> CandleFile:
    """The candles of ``raw`` that can be trusted, and a report of every row that cannot."""
    n = len(raw.lines)
    micros, parsed, shown_time = parse_times(raw.time)
    cols = {name: _Numbers(raw.values[name]) for name in VALUES}
    reasons = np.full(n, None, dtype=object)
    bad = np.zeros(n, dtype=bool)

    def reject(mask: np.ndarray, reason) -> None:
        rows = np.flatnonzero(mask & ~bad)
        for i in rows:
            reasons[i] = reason(i)
        bad[rows] = True

    reject(~parsed, lambda i: f"unparseable time {t!r}" if (t := _shown(shown_time, i)) else "missing time")
    _check_bar_size(micros[parsed], step_us, granularity)
    reject(micros % step_us != 0, lambda i: f"time {_shown(shown_time, i)!r} is not aligned to {granularity}")
    for name, col in cols.items():
        reject(~col.finite, lambda i, name=name, col=col: _number_problem(name, col.text(i)))
    for name in PRICES:
        reject(cols[name].floats <= 0, lambda i, name=name: f"{name} must be > 0, got {cols[name].text(i)!r}")
    o, h, lo, c, v = (cols[name].floats for name in VALUES)
    reject(h < lo, lambda i: f"high {cols['high'].text(i)!r} < low {cols['low'].text(i)!r}")
    reject(h < np.maximum(o, c), lambda i: _bound_problem(cols, i, "high", o[i] >= c[i]))
    reject(lo > np.minimum(o, c), lambda i: _bound_problem(cols, i, "low", o[i] <= c[i]))
    reject(v < 0, lambda i: f"negative volume {cols['volume'].text(i)!r}")
    # Floats cannot order values that differ beyond float precision: re-check those ties exactly.
    for i in np.flatnonzero(_float_ties(cols) & ~bad):
        if problem := _exact_problem(cols, i):
            reasons[i], bad[i] = problem, True

    duplicates, dropped = _drop_duplicates(micros, cols, raw.lines, reasons, bad)
    rows = np.flatnonzero(~bad & ~dropped)
    rows = rows[np.argsort(micros[rows], kind="stable")]
    starts = micros[rows]
    values = {name: cols[name].exact(rows) for name in VALUES}
    rejected = raw.rejected + [RejectedRow(int(raw.lines[i]), reasons[i]) for i in np.flatnonzero(bad)]
    rejected.sort(key=lambda r: r.line)
    return CandleFile(starts, values, rejected, duplicates, _gaps(starts, step_us), raw.source_rows)


def _number_problem(name: str, text: str) -> str:
    if not text.strip():
        return f"missing {name}"
    try:
        if not Decimal(text).is_finite():
            return f"non-finite {name} {text!r}"
    except InvalidOperation:
        pass
    return f"unparseable {name} {text!r}"


def _bound_problem(cols: dict[str, _Numbers], i: int, bound: str, open_is_extreme: bool) -> str:
    other = "open" if open_is_extreme else "close"
    sign = "<" if bound == "high" else ">"
    return f"{bound} {cols[bound].text(i)!r} {sign} {other} {cols[other].text(i)!r}"


def _float_ties(cols: dict[str, _Numbers]) -> np.ndarray:
    """Rows where two prices compare equal as floats although their decimal texts differ."""
    pairs = (("high", "low"), ("high", "open"), ("high", "close"), ("low", "open"), ("low", "close"))
    ties = np.zeros(len(cols["open"].floats), dtype=bool)
    for a, b in pairs:
        equal = np.flatnonzero(cols[a].floats == cols[b].floats)
        differ = cols[a].texts[cols[a].codes[equal]] != cols[b].texts[cols[b].codes[equal]]
        ties[equal[np.asarray(differ, dtype=bool)]] = True
    return ties


def _exact_problem(cols: dict[str, _Numbers], i: int) -> str | None:
    o, h, lo, c = (cols[name].exact(i) for name in PRICES)
    if h < lo:
        return f"high {cols['high'].text(i)!r} < low {cols['low'].text(i)!r}"
    if h < max(o, c):
        return _bound_problem(cols, i, "high", o >= c)
    if lo > min(o, c):
        return _bound_problem(cols, i, "low", o <= c)
    return None


def _drop_duplicates(micros, cols, lines, reasons, bad) -> tuple[int, np.ndarray]:
    """Drop exact repeats of a start (counted) and reject conflicting ones; the first one stays."""
    import pandas as pd

    good = np.flatnonzero(~bad)
    dropped = np.zeros(len(bad), dtype=bool)
    first: dict[int, tuple[int, tuple[Decimal, ...]]] = {}
    duplicates = 0
    for i in good[pd.Series(micros[good]).duplicated(keep=False).to_numpy()]:  # in file order
        row = tuple(cols[name].exact(i) for name in VALUES)
        kept = first.setdefault(int(micros[i]), (int(lines[i]), row))
        if kept[0] == lines[i]:
            continue
        if row == kept[1]:
            dropped[i] = True
            duplicates += 1
        else:
            reasons[i], bad[i] = f"conflicting duplicate of line {kept[0]}", True
    return duplicates, dropped


def _check_bar_size(micros: np.ndarray, step_us: int, granularity: str) -> None:
    """Refuse a file whose candles are plainly another bar size than the one asked for: most of
    them off the grid (a finer file), or not two of them one bar apart (a coarser one)."""
    starts = np.sort(micros)
    starts = starts[np.concatenate(([True], starts[1:] != starts[:-1]))]  # np.unique's, without numpy.ma
    if len(starts) < 10:
        return  # too few to tell a bar size from a few bad rows or gaps
    deltas = np.diff(starts)
    finer = np.count_nonzero(starts % step_us) * 2 > len(starts)
    coarser = len(starts) >= 20 and int(deltas.min()) > step_us
    if not (finer or coarser):
        return
    spacing = int(np.median(deltas))
    names = {int(delta / timedelta(microseconds=1)): name for name, delta in GRANULARITIES.items()}
    seen = names.get(spacing)
    hint = f"pass --granularity {seen}" if seen else f"use one of {', '.join(GRANULARITIES)}"
    raise ValueError(f"the file's candles are {timedelta(microseconds=spacing)} apart, not {granularity}; {hint}")


def _gaps(starts: np.ndarray, step_us: int) -> list[CandleGap]:
    deltas = np.diff(starts)
    return [
        CandleGap(_as_datetime(starts[i]), _as_datetime(starts[i + 1]), int(deltas[i] // step_us) - 1)
        for i in np.flatnonzero(deltas > step_us)
    ]


def _as_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))
