"""Health alerts: table ``alerts``, one row per alert episode of a check.

An episode opens at the ``AlertRaised`` of a check that had no active alert
(``status = 'active'``), takes later raises of the same episode as
escalations (``severity`` becomes the highest, ``first_severity`` keeps the
first, ``escalations`` counts them, ``value``/``threshold``/``message`` are
the latest raise's), and closes at its ``AlertResolved`` (``status =
'resolved'``, ``resolved_at``, ``resolved_value``, ``resolution``).
``episode`` numbers a check's episodes from 1. Alerts are rare, so the few
rows of a page are applied one by one in log order.
"""

from __future__ import annotations

import json

import duckdb

from projections.engine.base import MONEY


class AlertsProjection:
    """Table ``alerts``."""

    name = "alerts"
    tables = ("alerts",)
    event_types = ("AlertRaised", "AlertResolved")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS alerts (
                alert_id UUID NOT NULL,          -- the check's alert stream
                check_name VARCHAR NOT NULL,
                episode INTEGER NOT NULL,        -- 1, 2, ... per check
                status VARCHAR NOT NULL,         -- 'active' | 'resolved'
                severity VARCHAR NOT NULL,       -- P0..P3, the highest of the episode
                first_severity VARCHAR NOT NULL,
                escalations INTEGER NOT NULL,
                check_status VARCHAR NOT NULL,   -- 'warn' | 'critical' at the latest raise
                value {MONEY},
                threshold {MONEY},
                unit VARCHAR NOT NULL,
                message VARCHAR NOT NULL,
                raised_at TIMESTAMPTZ NOT NULL,
                raised_by VARCHAR NOT NULL,
                escalated_at TIMESTAMPTZ,
                resolved_at TIMESTAMPTZ,
                resolved_value {MONEY},
                resolution VARCHAR,
                last_notification_id BIGINT NOT NULL
            )"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP TABLE IF EXISTS alerts")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        rows = con.execute(
            """SELECT notification_id, event_type, stream_id, occurred_at, actor, payload FROM batch_events
            WHERE notification_id > ? AND event_type IN ('AlertRaised', 'AlertResolved') ORDER BY notification_id""",
            [after],
        ).fetchall()
        for nid, event_type, stream, at, actor, payload in rows:
            data = json.loads(payload)
            active = con.execute(
                "SELECT episode FROM alerts WHERE alert_id = ? AND status = 'active'", [stream]
            ).fetchall()
            if event_type == "AlertRaised":
                if active:
                    con.execute(
                        """UPDATE alerts SET severity = ?, escalations = escalations + 1, check_status = ?,
                           value = ?, threshold = ?, message = ?, escalated_at = ?, last_notification_id = ?
                        WHERE alert_id = ? AND status = 'active'""",
                        [data["severity"], data["status"], data.get("value"), data.get("threshold"), data["message"],
                         at, nid, stream],
                    )
                    continue
                episode = con.execute(
                    "SELECT coalesce(max(episode), 0) + 1 FROM alerts WHERE alert_id = ?", [stream]
                ).fetchall()[0][0]
                con.execute(
                    """INSERT INTO alerts VALUES (?, ?, ?, 'active', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL,
                       NULL, ?)""",
                    [stream, data["check"], episode, data["severity"], data["severity"], data["status"],
                     data.get("value"), data.get("threshold"), data.get("unit", ""), data["message"], at, actor, nid],
                )
            elif active:
                con.execute(
                    """UPDATE alerts SET status = 'resolved', resolved_at = ?, resolved_value = ?, resolution = ?,
                       last_notification_id = ?
                    WHERE alert_id = ? AND status = 'active'""",
                    [at, data.get("value"), data["message"], nid, stream],
                )


PROJECTIONS = (AlertsProjection(),)
