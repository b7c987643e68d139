"""What every read-model projection is, and the batch it is handed.

The projector (projections/runner.py) copies a page of the log into DuckDB as
the temporary table ``batch_events`` and asks each projection to apply the
rows it has not seen yet, inside one DuckDB transaction that also moves that
projection's position in ``projection_tracking``. So a crash never applies an
event twice or skips one, and a rebuild is the same code from position 0.

``batch_events`` columns:

    notification_id  BIGINT     -- the log's order
    topic            VARCHAR    -- 'domain.order:OrderFilled'
    event_type       VARCHAR    -- 'OrderFilled' (the class name)
    stream_id        UUID       -- originator_id
    version          BIGINT     -- originator_version
    occurred_at      TIMESTAMPTZ
    actor            VARCHAR
    correlation_id   UUID
    causation_id     UUID
    run_id           UUID
    payload          JSON       -- the stored event JSON (Decimals as strings)

A projection reads its rows with ``WHERE notification_id > ? AND
event_type IN (...)`` (the ``after`` argument), preferably as set-based SQL
(``INSERT ... SELECT payload->>'$.close' ...``); stateful ones (positions,
P&L) may fetch their few rows and compute in Python with Decimal.
Money columns are DECIMAL(38, 18), never DOUBLE.
"""

from __future__ import annotations

from typing import Protocol

import duckdb

MONEY = "DECIMAL(38, 18)"


class Projection(Protocol):
    """One read model: the tables it owns, built only from events."""

    name: str
    """Unique, stable: the key of its row in projection_tracking."""
    tables: tuple[str, ...]
    """The tables it owns (names are the contract of DESIGN.md)."""
    event_types: tuple[str, ...]
    """Event class names it reads; the projector skips batches with none of them."""

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        """CREATE TABLE IF NOT EXISTS for each owned table."""

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        """DROP each owned table (a rebuild then calls create and applies from 0)."""

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        """Apply the rows of ``batch_events`` with notification_id > after (in a transaction the projector owns)."""
