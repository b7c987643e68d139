"""A page of the SQLite log read as three arrow columns by one aggregate statement.

``select_log_rows`` makes a Python tuple, int, str and bytes for every row, holding the GIL throughout; the
projector then turns them into arrow columns. Here SQLite joins the page's ids, state lengths, topics and
states into four values in ONE ``sqlite3_step`` (the GIL released for all of it) and arrow cuts them
apart again: no Python object per row. The four aggregates of one statement see the rows in the same
order, and the ids say which order that was: a page whose ids do not strictly increase after ``after``,
whose counts disagree (a NULL value, a topic holding the separator) or that SQLite cannot join (longer than
its longest value) is not read here (None): the caller reads it by rows. A state that is not UTF-8 fails
the cast to text as it does on the row path.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SEPARATOR", "log_columns", "statement"]

SEPARATOR = "\x1f"
"""Between two topics of a page (the unit separator: no event class's topic holds it)."""


def statement(table: str) -> str:
    # length() of a BLOB counts bytes (of a TEXT, characters: hence the cast); the states are joined with no
    # separator and cut by those lengths.
    return (
        "SELECT count(*), group_concat(rowid), group_concat(length(CAST(state AS BLOB))), "
        f"group_concat(topic, char({ord(SEPARATOR)})), CAST(group_concat(state, '') AS BLOB) "
        f"FROM (SELECT rowid, topic, state FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?)"
    )


def log_columns(cursor: Any, sql: str, after: int, limit: int) -> tuple[pa.Array, pa.Array, pa.Array] | None:
    """(notification ids int64, topics string, states string) of the ``limit`` rows after ``after``, from
    ``statement(table)`` run on ``cursor``; None when the page must be read by rows (see the module)."""
    try:
        cursor.execute(sql, (after, limit))
        count, ids_text, lengths_text, topics_text, states = cursor.fetchone()
    except sqlite3.DataError:  # "string or blob too big": the page joined is longer than SQLite's longest value
        return None
    if count == 0:
        empty = pa.array([], pa.string())
        return pa.array([], pa.int64()), empty, empty
    if ids_text is None or lengths_text is None or topics_text is None or states is None:
        return None
    ids = _numbers(ids_text)
    lengths = _numbers(lengths_text)
    topics = pc.split_pattern(pa.array([topics_text], pa.string()), SEPARATOR).flatten()
    if len(ids) != count or len(lengths) != count or len(topics) != count:
        return None
    if ids[0].as_py() <= after or (count > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py()):
        return None
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(lengths.to_numpy(), out=offsets[1:])
    if int(offsets[-1]) != len(states) or len(states) >= 2**31:
        return None
    payload = pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                          pa.py_buffer(states)])
    return ids, topics, payload.cast(pa.string())


def _numbers(text: str) -> pa.Array:
    """A comma-joined list of integers as an int64 column."""
    return pc.cast(pc.split_pattern(pa.array([text], pa.string()), ",").flatten(), pa.int64())
