"""What a candle file may look like, and how each format becomes rows of text.

CSV (plain or gzipped) and Parquet are read into :class:`RawRows`: the time column and the five
value columns as text (or Parquet's own datetimes/numbers for the time), with the line of each row.
Nothing is judged here beyond the shape of the file; :mod:`infrastructure.candles.validation` decides
which rows are candles.

* CSV is read with every field as text so prices keep their exact decimal digits. Parquet float
  columns are turned into their shortest round-trip text (what the writer meant), decimal and
  string columns keep their exact text.
* Column names are matched case-insensitively after stripping. Time column: the first of
  ``time, date, timestamp, datetime, start``. Volume: ``volume``, except that when both
  ``volume_btc`` and ``volume`` exist (CryptoDataDownload, where ``volume`` is the USD volume) the
  base-currency ``volume_btc`` is used. ``columns={"volume": "VolumeFrom"}`` overrides any of them.
* Times: ISO-8601 (an offset or ``Z`` is converted to UTC; a naive time is taken as UTC), epoch
  seconds, epoch milliseconds (any magnitude above 1e11 is milliseconds), or CryptoDataDownload's
  ``2019-10-17 09-AM``. The time is the candle's open time.
* A CryptoDataDownload banner line before the header is detected and skipped. Blank lines are
  skipped. ``RejectedRow.line`` is the 1-based physical line in a CSV (banner and header counted)
  and the 1-based row number in a Parquet file.
"""

from __future__ import annotations

import csv
import gzip
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LOGICAL_COLUMNS", "PRICES", "VALUES", "RawRows", "RejectedRow", "parse_times", "read_rows"]

_TIME_ALIASES = ("time", "date", "timestamp", "datetime", "start")
PRICES = ("open", "high", "low", "close")
VALUES = (*PRICES, "volume")
LOGICAL_COLUMNS = ("time", *VALUES)
_KNOWN_NAMES = frozenset((*_TIME_ALIASES, *VALUES, "volume_btc"))
_EPOCH_MS_THRESHOLD = 1e11
_CDD_FORMAT = "%Y-%m-%d %I-%p"


@dataclass(frozen=True)
class RejectedRow:
    """A row left out of the candles, with where it is and why."""

    line: int
    reason: str


def read_rows(path: Path, mapping: Mapping[str, str]) -> RawRows:
    """The rows of a CSV or Parquet candle file as text; ValueError for an unusable file."""
    unknown = sorted(set(mapping) - set(LOGICAL_COLUMNS))
    if unknown:
        raise ValueError(
            f"unknown logical column(s) {', '.join(unknown)} in mapping; "
            f"expected some of {', '.join(LOGICAL_COLUMNS)}"
        )
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        raw = _read_parquet(path, mapping)
    elif name.endswith((".csv", ".csv.gz", ".gz", ".txt")):
        raw = _read_csv(path, mapping)
    else:
        raise ValueError(f"{path}: unsupported candle file type (expected .csv, .csv.gz or .parquet)")
    if raw.source_rows == 0:
        raise ValueError(f"no candle rows in {path}")
    return raw


@dataclass
class RawRows:
    """Every row of a file as text, with the line it came from."""

    lines: np.ndarray  # int64: physical line (CSV) or 1-based row number (Parquet) of each row
    time: pd.Series  # text, or datetime64 / numbers straight from a Parquet column
    values: dict[str, pd.Series]  # logical value column -> text, "" when missing
    source_rows: int
    rejected: list[RejectedRow]  # rows with the wrong number of fields


def _resolve_columns(names: Sequence[str], mapping: Mapping[str, str], path: Path) -> dict[str, int]:
    """Logical column -> position in ``names``; ValueError naming what is missing or ambiguous."""
    normal = [n.strip().lower() for n in names]
    found = ", ".join(repr(n) for n in names)
    position: dict[str, int] = {}
    for i, n in enumerate(normal):
        position.setdefault(n, i)
    resolved: dict[str, int] = {}
    for logical, file_column in mapping.items():
        key = file_column.strip().lower()
        if key not in position:
            raise ValueError(
                f"{path}: mapped column {file_column!r} (for {logical}) not found; columns found: {found}"
            )
        resolved[logical] = position[key]
    alias = next((a for a in _TIME_ALIASES if a in position), None)
    if "time" not in resolved and alias is not None:
        resolved["time"] = position[alias]
    volume = "volume_btc" if "volume_btc" in position else "volume"
    if "volume" not in resolved and volume in position:
        resolved["volume"] = position[volume]
    for logical in PRICES:
        if logical not in resolved and logical in position:
            resolved[logical] = position[logical]
    missing = [c for c in LOGICAL_COLUMNS if c not in resolved]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; columns found: {found}")
    for logical, i in resolved.items():
        if normal.count(normal[i]) > 1:
            raise ValueError(f"{path}: column {names[i]!r} (for {logical}) appears more than once")
    return resolved


def _locate_header(
    head: list[list[str]], mapping: Mapping[str, str], path: Path
) -> tuple[int, list[str], dict[str, int]]:
    """(1-based header line, header names, positions); a banner line before the header is skipped."""
    targets = _KNOWN_NAMES | {v.strip().lower() for v in mapping.values()}
    errors: list[tuple[int, ValueError]] = []
    for line, names in enumerate(head, start=1):
        try:
            return line, names, _resolve_columns(names, mapping, path)
        except ValueError as error:
            errors.append((sum(n.strip().lower() in targets for n in names), error))
    if len(head) < 2 and errors[0][0] == 0:  # a lone banner (or nothing like a header)
        raise ValueError(f"no candle rows in {path}")
    # Neither line is a full header: report against the one that looks most like a header.
    raise max(errors, key=lambda e: e[0])[1]


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _read_csv(path: Path, mapping: Mapping[str, str]) -> RawRows:
    with _open_text(path) as handle:
        head = list(itertools.islice(csv.reader(handle), 2))
    if not head:
        raise ValueError(f"no candle rows in {path}")
    header_line, names, positions = _locate_header(head, mapping, path)
    width = len(names)
    table = _read_csv_fast(path, header_line, width)
    rejected: list[RejectedRow] = []
    if table is None:  # ragged rows or quoted line breaks: physical line numbers need the csv module
        table, lines, rejected = _read_csv_exact(path, header_line, width)
    else:
        lines = np.arange(header_line + 1, header_line + 1 + len(table), dtype=np.int64)
    # A blank (or whitespace-only) line has at most its first field non-empty.
    rest_empty = np.logical_and.reduce([(table[c] == "").to_numpy(dtype=bool) for c in table.columns[1:]])
    blank = np.zeros(len(table), dtype=bool)
    if rest_empty.any():
        maybe = np.flatnonzero(rest_empty)
        blank[maybe] = (table[0].iloc[maybe].str.strip() == "").to_numpy(dtype=bool)
    if blank.any():
        table, lines = table[~blank].reset_index(drop=True), lines[~blank]
    return RawRows(
        lines=lines,
        time=table[positions["time"]],
        values={name: table[positions[name]] for name in VALUES},
        source_rows=len(table) + len(rejected),
        rejected=rejected,
    )


def _read_csv_fast(path: Path, header_line: int, width: int) -> pd.DataFrame | None:
    """The C parser's all-text table, or None when its rows are not one per physical line."""
    import pandas as pd

    try:
        table = pd.read_csv(
            path,
            dtype=str,
            header=None,
            names=range(width),
            skiprows=header_line,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({c: pd.Series([], dtype=str) for c in range(width)})
    except pd.errors.ParserError:  # a row with more fields than the header
        return None
    # More fields than the header on the first row makes pandas move columns into the index.
    if not isinstance(table.index, pd.RangeIndex) or table.shape[1] != width:
        return None
    if _has_quote(path) and any(table[c].str.contains(r"[\r\n]").any() for c in table.columns):
        return None
    return table


def _has_quote(path: Path) -> bool:
    with gzip.open(path) if path.name.lower().endswith(".gz") else open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            if b'"' in chunk:
                return True
    return False


def _read_csv_exact(
    path: Path, header_line: int, width: int
) -> tuple[pd.DataFrame, np.ndarray, list[RejectedRow]]:
    import pandas as pd

    rows: list[list[str]] = []
    lines: list[int] = []
    rejected: list[RejectedRow] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        for _ in itertools.islice(reader, header_line):
            pass
        end = reader.line_num
        for row in reader:
            line, end = end + 1, reader.line_num
            if len(row) > width:
                rejected.append(RejectedRow(line, f"expected {width} fields, found {len(row)}"))
            else:  # short rows are padded with empty fields, as the fast path does
                rows.append(row + [""] * (width - len(row)))
                lines.append(line)
    table = pd.DataFrame(rows, columns=range(width), dtype=str)
    return table, np.asarray(lines, dtype=np.int64), rejected


def _read_parquet(path: Path, mapping: Mapping[str, str]) -> RawRows:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    positions = _resolve_columns(names, mapping, path)
    table = pq.read_table(path, columns=[names[i] for i in sorted(set(positions.values()))])
    values = {}
    for name in VALUES:
        column = table.column(names[positions[name]])
        try:  # floats become their shortest round-trip text, decimals and strings stay exact
            values[name] = pc.fill_null(pc.cast(column, pa.string()), "").to_pandas()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as error:
            raise ValueError(f"{path}: column {names[positions[name]]!r} is not numeric: {error}") from None
    return RawRows(
        lines=np.arange(1, table.num_rows + 1, dtype=np.int64),
        time=table.column(names[positions["time"]]).to_pandas(),
        values=values,
        source_rows=table.num_rows,
        rejected=[],
    )


# --- times ---------------------------------------------------------------------------------


def parse_times(time: pd.Series) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """(epoch microseconds, parsed mask, value to show in reasons) per row, vectorised."""
    import pandas as pd

    if isinstance(time.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(time.dtype):
        stamps = time.dt.tz_localize("UTC") if time.dt.tz is None else time.dt.tz_convert("UTC")
        micros = np.asarray(pd.DatetimeIndex(stamps).as_unit("us").asi8).copy()
        return micros, stamps.notna().to_numpy(dtype=bool), stamps
    if pd.api.types.is_numeric_dtype(time.dtype) and not pd.api.types.is_bool_dtype(time.dtype):
        micros, parsed = _epoch_micros(time)
        return micros, parsed, time
    text = time.fillna("").astype(str).str.strip()
    micros = np.zeros(len(text), dtype=np.int64)
    parsed = np.zeros(len(text), dtype=bool)
    present = (text != "").to_numpy(dtype=bool)
    sample = text[present].iat[0] if present.any() else ""
    # The format of the first value goes first; the others only see the rows it could not parse.
    if _is_number(sample):
        order = ("epoch", _CDD_FORMAT, "ISO8601")
    elif sample[-2:].upper() in ("AM", "PM"):
        order = (_CDD_FORMAT, "ISO8601", "epoch")
    else:
        order = ("ISO8601", _CDD_FORMAT, "epoch")
    for form in order:
        todo = np.flatnonzero(present & ~parsed)
        if not len(todo):
            break
        part = text.iloc[todo]
        if form == "epoch":
            got, ok = _epoch_micros(pd.to_numeric(part, errors="coerce"))
        else:
            stamps = pd.to_datetime(part, format=form, utc=True, errors="coerce")
            ok = stamps.notna().to_numpy(dtype=bool)
            got = np.zeros(len(todo), dtype=np.int64)
            got[ok] = pd.DatetimeIndex(stamps[ok]).as_unit("us").asi8
        micros[todo[ok]] = got[ok]
        parsed[todo[ok]] = True
    return micros, parsed, text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _epoch_micros(numbers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    values = np.asarray(pd.Series(numbers).to_numpy(dtype="float64", na_value=np.nan))
    scaled = np.round(values * np.where(np.abs(values) > _EPOCH_MS_THRESHOLD, 1e3, 1e6))
    parsed = np.isfinite(scaled) & (np.abs(scaled) < 2**62)
    return np.where(parsed, scaled, 0).astype(np.int64), parsed
