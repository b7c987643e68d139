"""What the strategy decided, what it cost, and what risk made of it.

``decisions``: one row per ``DecisionMade`` or ``DecisionFailed`` (failed, with
the fallback action and size 0). ``risk_assessments``: one row per
``RiskAssessed``. ``llm_stats``: a view over ``decisions`` aggregated per run,
strategy and model (calls, failures, latency p50/p95, tokens, cost), so it is
always exactly as current as ``decisions`` and costs nothing per batch.
Tokens are NULL when the model's response reported no usage, cost is NULL when
it is unknown (no usage, or no price for the model); ``llm_stats`` counts such
decisions (``usage_unknown``, ``cost_unknown``) and sums the known ones.
"""

from __future__ import annotations

import duckdb

from projections.engine.base import MONEY, type_counts

# The envelope fields ride in the same json_transform: one parse per event.
_ENVELOPE = '"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ"'

_MADE = f"""'{{{_ENVELOPE}, "strategy": "VARCHAR", "model": "VARCHAR", "prompt_hash": "VARCHAR", "product": "VARCHAR",
    "candle_start": "TIMESTAMPTZ", "action": "VARCHAR", "size_pct": "{MONEY}", "take_profit_pct": "{MONEY}",
    "stop_loss_pct": "{MONEY}", "rationale": "VARCHAR", "latency_ms": "{MONEY}", "prompt_tokens": "BIGINT",
    "completion_tokens": "BIGINT", "cost": "{MONEY}", "cached": "BOOLEAN"}}'"""

_FAILED = f"""'{{{_ENVELOPE}, "strategy": "VARCHAR", "model": "VARCHAR", "prompt_hash": "VARCHAR", "product": "VARCHAR",
    "candle_start": "TIMESTAMPTZ", "kind": "VARCHAR", "detail": "VARCHAR", "fallback_action": "VARCHAR",
    "latency_ms": "{MONEY}"}}'"""

_ASSESSED = f"""'{{{_ENVELOPE}, "approved": "BOOLEAN", "rule": "VARCHAR", "requested_size_pct": "{MONEY}",
    "approved_size_pct": "{MONEY}", "message": "VARCHAR"}}'"""


class DecisionsProjection:
    """Tables ``decisions`` and ``risk_assessments``; view ``llm_stats``."""

    name = "decisions"
    tables = ("decisions", "risk_assessments", "llm_stats")
    event_types = ("DecisionMade", "DecisionFailed", "RiskAssessed")

    def create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS decisions (
                decision_id UUID NOT NULL,
                run_id UUID,
                occurred_at TIMESTAMPTZ NOT NULL,
                strategy VARCHAR NOT NULL,
                model VARCHAR,
                product VARCHAR NOT NULL,
                candle_start TIMESTAMPTZ NOT NULL,
                action VARCHAR NOT NULL,
                size_pct {MONEY} NOT NULL,
                take_profit_pct {MONEY},
                stop_loss_pct {MONEY},
                rationale VARCHAR NOT NULL,
                failed BOOLEAN NOT NULL,
                failure_kind VARCHAR,
                failure_detail VARCHAR,
                latency_ms {MONEY} NOT NULL,
                prompt_tokens BIGINT,
                completion_tokens BIGINT,
                cost {MONEY},
                prompt_hash VARCHAR,
                cached BOOLEAN NOT NULL,
                notification_id BIGINT NOT NULL
            )"""
        )
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS risk_assessments (
                decision_id UUID NOT NULL,
                run_id UUID,
                occurred_at TIMESTAMPTZ NOT NULL,
                approved BOOLEAN NOT NULL,
                rule VARCHAR NOT NULL,
                requested_size_pct {MONEY} NOT NULL,
                approved_size_pct {MONEY} NOT NULL,
                message VARCHAR NOT NULL,
                numbers JSON NOT NULL,
                notification_id BIGINT NOT NULL
            )"""
        )
        for column in ("prompt_tokens", "completion_tokens", "cost"):  # files made when these were NOT NULL
            con.execute(f"ALTER TABLE decisions ALTER COLUMN {column} DROP NOT NULL")
        con.execute(
            f"""CREATE OR REPLACE VIEW llm_stats AS
            SELECT run_id, strategy, model,
                   count(*) AS calls,
                   count(*) FILTER (WHERE failed) AS failures,
                   count(*) FILTER (WHERE cached) AS cached,
                   quantile_disc(latency_ms, 0.5) AS latency_p50_ms,
                   quantile_disc(latency_ms, 0.95) AS latency_p95_ms,
                   CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens,
                   CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens,
                   CAST(coalesce(sum(cost), 0) AS {MONEY}) AS cost,
                   count(*) FILTER (WHERE NOT failed AND prompt_tokens IS NULL) AS usage_unknown,
                   count(*) FILTER (WHERE NOT failed AND cost IS NULL) AS cost_unknown
            FROM decisions
            GROUP BY run_id, strategy, model"""
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DROP VIEW IF EXISTS llm_stats")
        con.execute("DROP TABLE IF EXISTS risk_assessments")
        con.execute("DROP TABLE IF EXISTS decisions")

    def apply(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        counts = type_counts(con, after)
        if counts.get("DecisionMade"):
            self._made(con, after)
        self._failed_and_assessed(con, after, counts)

    def _made(self, con: duckdb.DuckDBPyConnection, after: int) -> None:
        con.execute(
            f"""INSERT INTO decisions
            SELECT d.originator_id, d.run_id, d.occurred_at, d.strategy, d.model, d.product, d.candle_start, d.action,
                   d.size_pct, d.take_profit_pct, d.stop_loss_pct, coalesce(d.rationale, ''), false, NULL, NULL,
                   coalesce(d.latency_ms, 0), d.prompt_tokens, d.completion_tokens,
                   d.cost, d.prompt_hash, coalesce(d.cached, false), notification_id
            FROM (SELECT notification_id, payload, json_transform(payload, {_MADE}) AS d
                  FROM batch_events WHERE notification_id > ? AND event_type = 'DecisionMade')
            """,
            [after],
        )

    def _failed_and_assessed(self, con: duckdb.DuckDBPyConnection, after: int, counts: dict[str, int]) -> None:
        if counts.get("DecisionFailed"):
            con.execute(
                f"""INSERT INTO decisions
                SELECT d.originator_id, d.run_id, d.occurred_at, d.strategy, d.model, d.product, d.candle_start,
                       coalesce(d.fallback_action, 'HOLD'), 0, NULL, NULL, '', true, d.kind, d.detail,
                       coalesce(d.latency_ms, 0), 0, 0, 0, d.prompt_hash, false, notification_id
                FROM (SELECT notification_id, payload, json_transform(payload, {_FAILED}) AS d
                      FROM batch_events WHERE notification_id > ? AND event_type = 'DecisionFailed')
                """,
                [after],
            )
        if counts.get("RiskAssessed"):
            con.execute(
                f"""INSERT INTO risk_assessments
                SELECT r.originator_id, r.run_id, r.occurred_at, r.approved, r.rule, r.requested_size_pct,
                       r.approved_size_pct, r.message, coalesce(json_extract(payload, '$.numbers'), '{{}}'),
                       notification_id
                FROM (SELECT notification_id, payload, json_transform(payload, {_ASSESSED}) AS r
                      FROM batch_events WHERE notification_id > ? AND event_type = 'RiskAssessed')
                """,
                [after],
            )


PROJECTIONS = (DecisionsProjection(),)
