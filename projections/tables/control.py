"""Configuration, trading control, incidents and runs.

- ``config_history``: every ``ConfigChanged`` (kind 'change') and one row per
  setting of every ``ConfigBaselineSet`` (kind 'baseline'). Values are copied as
  recorded: secrets only ever arrive as 'set:<fingerprint>' or 'unset'.
- ``config_drift``: the settings whose current value differs from the last
  baseline (the same rule as ``ConfigLedger.drift``), recomputed in SQL from
  ``config_history`` after each page that carries config events.
- ``controls``: every halt and resume; ``incidents``: one row per incident,
  resolved in place; ``runs``: one row per run, ended in place.
"""

from __future__ import annotations

import duckdb

from projections.engine.base import MONEY, type_counts


def _count(con: duckdb.DuckDBPyConnection, after: int, *types: str) -> int:
    counts = type_counts(con, after)
    return sum(counts.get(t, 0) for t in types)


class ConfigProjection:
    """Tables ``config_history`` and ``config_drift``."""

    name = "config"
    tables = ("config_history", "config_drift")
    event_types = ("ConfigChanged", "ConfigBaselineSet")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            """CREATE TABLE IF NOT EXISTS config_history (
                notification_id BIGINT NOT NULL,
                occurred_at TIMESTAMPTZ NOT NULL,
                actor VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,          -- 'change' | 'baseline'
                path VARCHAR NOT NULL,
                old_value VARCHAR,
                new_value VARCHAR,
                reason VARCHAR NOT NULL,
                config_hash VARCHAR NOT NULL
            )"""
        )
        con.execute(
            """CREATE TABLE IF NOT EXISTS config_drift (
                path VARCHAR NOT NULL,
                baseline_value VARCHAR,
                current_value VARCHAR,
                changed_at TIMESTAMPTZ NOT NULL,
                actor VARCHAR NOT NULL,
                notification_id BIGINT NOT NULL
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS config_drift")
        con.execute("DROP TABLE IF EXISTS config_history")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            """INSERT INTO config_history
            SELECT notification_id, occurred_at, actor, 'change', payload->>'$.path', payload->>'$.old_value',
                   payload->>'$.new_value', payload->>'$.reason', payload->>'$.config_hash'
            FROM batch_events WHERE notification_id > ? AND event_type = 'ConfigChanged'
            ORDER BY notification_id""",
            [after],
        )
        con.execute(
            """INSERT INTO config_history
            SELECT notification_id, occurred_at, actor, 'baseline', e.key, NULL, e.value, reason, config_hash
            FROM (SELECT notification_id, occurred_at, actor, coalesce(payload->>'$.reason', '') AS reason,
                         payload->>'$.config_hash' AS config_hash,
                         unnest(map_entries(json_transform(payload->'$.values', '"MAP(VARCHAR, VARCHAR)"'))) AS e
                  FROM batch_events WHERE notification_id > ? AND event_type = 'ConfigBaselineSet')
            ORDER BY notification_id, e.key""",
            [after],
        )
        con.execute("DELETE FROM config_drift")
        con.execute(
            """INSERT INTO config_drift
            WITH base AS (
                SELECT path, new_value AS value FROM config_history
                WHERE kind = 'baseline'
                  AND notification_id = (SELECT max(notification_id) FROM config_history WHERE kind = 'baseline')
            ), cur AS (
                SELECT path, new_value AS value, occurred_at, actor, notification_id FROM config_history
                QUALIFY row_number() OVER (PARTITION BY path ORDER BY notification_id DESC) = 1
            )
            SELECT cur.path, base.value, cur.value, cur.occurred_at, cur.actor, cur.notification_id
            FROM cur LEFT JOIN base USING (path)
            WHERE base.value IS DISTINCT FROM cur.value
            ORDER BY cur.path"""
        )


class ControlProjection:
    """Tables ``controls`` (halts and resumes) and ``incidents``."""

    name = "control"
    tables = ("controls", "incidents")
    event_types = ("TradingHalted", "TradingResumed", "IncidentOpened", "IncidentResolved")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            """CREATE TABLE IF NOT EXISTS controls (
                notification_id BIGINT NOT NULL,
                occurred_at TIMESTAMPTZ NOT NULL,
                action VARCHAR NOT NULL,        -- 'halt' | 'resume'
                reason VARCHAR NOT NULL,
                severity VARCHAR,               -- P0..P3 for halts
                actor VARCHAR NOT NULL,
                control_id UUID NOT NULL,       -- the live control stream, or a backtest run's own
                run_id UUID
            )"""
        )
        con.execute(
            """CREATE TABLE IF NOT EXISTS incidents (
                incident_id UUID NOT NULL,
                severity VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                details VARCHAR NOT NULL,
                opened_at TIMESTAMPTZ NOT NULL,
                opened_by VARCHAR NOT NULL,
                resolved_at TIMESTAMPTZ,
                resolved_by VARCHAR,
                note VARCHAR,
                status VARCHAR NOT NULL,        -- 'open' | 'resolved'
                run_id UUID,
                bot_id VARCHAR                  -- the bot it concerns; NULL: every bot
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS incidents")
        con.execute("DROP TABLE IF EXISTS controls")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        if _count(con, after, "TradingHalted", "TradingResumed"):
            self._controls(con, after)
        if _count(con, after, "IncidentOpened", "IncidentResolved"):
            self._incidents(con, after)

    def _controls(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            """INSERT INTO controls
            SELECT notification_id, occurred_at,
                   CASE event_type WHEN 'TradingHalted' THEN 'halt' ELSE 'resume' END,
                   payload->>'$.reason', payload->>'$.severity', actor, stream_id, run_id
            FROM batch_events WHERE notification_id > ? AND event_type IN ('TradingHalted', 'TradingResumed')
            ORDER BY notification_id""",
            [after],
        )

    def _incidents(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            """INSERT INTO incidents
            SELECT stream_id, payload->>'$.severity', payload->>'$.kind', payload->>'$.details', occurred_at, actor,
                   NULL, NULL, NULL, 'open', run_id, payload->>'$.bot_id'
            FROM batch_events WHERE notification_id > ? AND event_type = 'IncidentOpened'
            ORDER BY notification_id""",
            [after],
        )
        con.execute(
            """UPDATE incidents SET resolved_at = r.occurred_at, resolved_by = r.actor, note = r.note, status = 'resolved'
            FROM (SELECT stream_id, occurred_at, actor, payload->>'$.note' AS note
                  FROM batch_events WHERE notification_id > ? AND event_type = 'IncidentResolved'
                  QUALIFY row_number() OVER (PARTITION BY stream_id ORDER BY notification_id DESC) = 1) AS r
            WHERE incidents.incident_id = r.stream_id""",
            [after],
        )


class RunsProjection:
    """Table ``runs``: one row per backtest, paper or live run."""

    name = "runs"
    tables = ("runs",)
    event_types = ("RunStarted", "RunEnded")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS runs (
                run_id UUID NOT NULL,
                mode VARCHAR NOT NULL,
                product VARCHAR NOT NULL,
                granularity VARCHAR NOT NULL,
                strategy VARCHAR NOT NULL,
                config_hash VARCHAR NOT NULL,
                code_version VARCHAR NOT NULL,
                initial_balance {MONEY},
                data_from TIMESTAMPTZ,
                data_to TIMESTAMPTZ,
                started_at TIMESTAMPTZ NOT NULL,
                ended_at TIMESTAMPTZ,
                status VARCHAR NOT NULL,        -- 'running' until RunEnded: completed | stopped | failed
                reason VARCHAR,
                actor VARCHAR NOT NULL,
                bot_id VARCHAR NOT NULL         -- RunStarted.bot_id; before bots had ids: <mode>-<product>
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS runs")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        if _count(con, after, "RunStarted"):
            self._started(con, after)
        if _count(con, after, "RunEnded"):
            self._ended(con, after)

    def _started(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            f"""INSERT INTO runs
            SELECT stream_id, payload->>'$.mode', payload->>'$.product', payload->>'$.granularity',
                   payload->>'$.strategy', payload->>'$.config_hash', payload->>'$.code_version',
                   CAST(payload->>'$.initial_balance' AS {MONEY}),
                   CAST(payload->>'$.data_from' AS TIMESTAMPTZ), CAST(payload->>'$.data_to' AS TIMESTAMPTZ),
                   occurred_at, NULL, 'running', NULL, actor,
                   coalesce(payload->>'$.bot_id', lower((payload->>'$.mode') || '-' || (payload->>'$.product')))
            FROM batch_events WHERE notification_id > ? AND event_type = 'RunStarted'
            ORDER BY notification_id""",
            [after],
        )

    def _ended(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            """UPDATE runs SET ended_at = e.occurred_at, status = e.status, reason = e.reason
            FROM (SELECT stream_id, occurred_at, payload->>'$.status' AS status, payload->>'$.reason' AS reason
                  FROM batch_events WHERE notification_id > ? AND event_type = 'RunEnded'
                  QUALIFY row_number() OVER (PARTITION BY stream_id ORDER BY notification_id DESC) = 1) AS e
            WHERE runs.run_id = e.stream_id""",
            [after],
        )


PROJECTIONS = (ConfigProjection(), ControlProjection(), RunsProjection())
