"""The money ledger's rows of a small page, read in Python: the same rows as the SQL of page.py, without its fixed cost.

A follower's page holds a handful of events; DuckDB's JSON functions cost milliseconds per statement
whatever the page's size. For a page of at most ``PARSED_PAGE`` events the projector's page (its arrow
table) is parsed once here with orjson and both the walk's rows (``walk_events``) and the page's candle
closes (``page_marks``) are made from it. Only values DuckDB would read the same way are taken: text
fields that are JSON strings (or null), UUIDs in their canonical form, times as pydantic writes them;
any other value gives None and the caller runs the SQL, so the rows are the SQL's exactly
(tests/integration/test_money_projections.py compares both over whole backtests).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import orjson
import pyarrow as pa

__all__ = ["PARSED_PAGE", "marks_rows", "walk_rows"]

PARSED_PAGE = 1000
"""Pages of at most this many events are read here (above it, DuckDB's set-based SQL is the cheaper)."""

_CANDLES = ("CandleClosed", "CandleCorrected")
_DECISIONS = ("DecisionMade", "DecisionFailed")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z").match
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z").match
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)
_TEXT_FIELDS = ("product", "granularity", "close", "side", "quantity", "price", "fee", "fill_id", "amount", "path",
                "new_value", "rule")


class _Unsure(Exception):
    """A value DuckDB might read otherwise than this module: the page goes to the SQL."""


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _Unsure


def _uuid(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is str and _UUID(value):
        return value
    raise _Unsure


def _micros(value: object) -> int | None:
    """Epoch microseconds of a time as pydantic writes it (what DuckDB's TIMESTAMPTZ then epoch_us give)."""
    if value is None:
        return None
    if type(value) is str and _TIME(value):
        return (datetime.fromisoformat(value) - _EPOCH) // _MICRO
    raise _Unsure


def _row(nid: int, kind: str, data: dict) -> tuple:
    """One row as page.py's ``e``/``w`` give it: nid, type, stream, run, at, product, granularity, start, close,
    candle_start, side, quantity, price, fee, fill_id, amount, path, new_value, rule, limit_pct."""
    product, granularity, close, side, quantity, price, fee, fill_id, amount, path, new_value, rule = (
        _text(data.get(f)) for f in _TEXT_FIELDS)
    numbers = data.get("numbers")
    if numbers is None:
        limit = None
    elif type(numbers) is dict:
        limit = _text(numbers.get("limit_pct"))
    else:
        raise _Unsure
    return (nid, kind, _uuid(data.get("originator_id")), _uuid(data.get("run_id")), _micros(data.get("occurred_at")),
            product, granularity, _micros(data.get("start")), close, _micros(data.get("candle_start")), side, quantity,
            price, fee, fill_id, amount, path, new_value, rule, limit)


def parse(page: pa.Table, after: int, types: frozenset[str]) -> list[tuple] | None:
    """The rows (see ``_row``) of the page's events of ``types`` after ``after``, in log order; None when the page
    is too large or holds a value this module does not read as DuckDB would."""
    if page.num_rows > PARSED_PAGE:
        return None
    nids = page.column("notification_id").to_pylist()
    kinds = page.column("event_type").to_pylist()
    payloads = [text for chunk in page.column("payload").chunks
                for text in (chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk).to_pylist()]
    rows = []
    try:
        for nid, kind, payload in zip(nids, kinds, payloads):
            if nid > after and kind in types:
                data = orjson.loads(payload)
                if type(data) is not dict:
                    raise _Unsure
                rows.append(_row(nid, kind, data))
    except (_Unsure, orjson.JSONDecodeError, ValueError):
        return None
    return rows


def walk_rows(parsed: list[tuple]) -> list[tuple]:
    """page.py's ``walk_events`` rows from the parsed rows: candles that are no run's and that no decision of the
    page names are left out; a decision right after its run's CandleClosed (same run, product and candle) rides
    on that candle's row as (dnid, dat, dtype)."""
    named = {(r[5], r[9]) for r in parsed if r[1] in _DECISIONS and r[5] is not None and r[9] is not None}
    w = [r for r in parsed if r[1] not in _CANDLES or (r[1] == "CandleClosed" and r[3] is not None)
         or (r[5] is not None and r[7] is not None and (r[5], r[7]) in named)]
    out = []
    carried = False
    for i, r in enumerate(w):
        if carried:  # this decision rides on the candle before it
            carried = False
            continue
        n = w[i + 1] if i + 1 < len(w) else None
        if (n is not None and r[1] == "CandleClosed" and n[1] in _DECISIONS and r[3] is not None and n[3] == r[3]
                and r[5] is not None and n[5] == r[5] and r[7] is not None and n[9] == r[7]):
            out.append((*r, n[0], n[4], n[1]))
            carried = True
        else:
            out.append((*r, None, None, None))
    return out


MARKS_SCHEMA = pa.schema([("product", pa.string()), ("granularity", pa.string()), ("start_us", pa.int64()),
                          ("close", pa.string())])


def marks_rows(parsed: list[tuple]) -> pa.Table:
    """page.py's ``page_marks``: each candle's close after the position, the page's last one winning."""
    last: dict[tuple, str | None] = {}
    for r in parsed:
        if r[1] in _CANDLES:
            last[(r[5], r[6], r[7])] = r[8]
    return pa.Table.from_pylist([{"product": p, "granularity": g, "start_us": s, "close": c}
                                 for (p, g, s), c in last.items()], schema=MARKS_SCHEMA)
