"""A page's ``DecisionMade`` events parsed once for the decisions projection and the money ledger's walk.

Half of a backtest's events are decisions (the largest payloads of the log, with their indicator inputs):
``page_decisions`` parses them once per page and position (``shared``; the projector computes it while the
page is read ahead, for the money ledger) into an arrow table that projections/tables/decisions.py and
projections/ledger/page.py read as the view ``page_decisions`` (``decisions_view``). It carries every field
either reads (the walk's as its own JSON parse typed them), so each gets the rows its own parse gave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from projections.engine.base import MONEY, shared

__all__ = ["decisions_view", "page_decisions"]

_FIELDS = (
    f'{{"originator_id": "UUID", "run_id": "UUID", "occurred_at": "TIMESTAMPTZ", "strategy": "VARCHAR", '
    f'"model": "VARCHAR", "prompt_hash": "VARCHAR", "product": "VARCHAR", "candle_start": "TIMESTAMPTZ", '
    f'"action": "VARCHAR", "size_pct": "{MONEY}", "take_profit_pct": "{MONEY}", "stop_loss_pct": "{MONEY}", '
    f'"rationale": "VARCHAR", "latency_ms": "{MONEY}", "prompt_tokens": "BIGINT", "completion_tokens": "BIGINT", '
    f'"cost": "{MONEY}", "cached": "BOOLEAN", '
    # the walk's other fields, as its parse of every event type reads them (none of a decision's in practice)
    '"granularity": "VARCHAR", "start": "TIMESTAMPTZ", "close": "VARCHAR", "side": "VARCHAR", "quantity": "VARCHAR", '
    '"price": "VARCHAR", "fee": "VARCHAR", "fill_id": "VARCHAR", "amount": "VARCHAR", "path": "VARCHAR", '
    '"new_value": "VARCHAR", "rule": "VARCHAR", "numbers": {"limit_pct": "VARCHAR"}}'
)


def page_decisions(con: duckdb.DuckDBPyConnection, after: int) -> pa.Table:
    """The ``DecisionMade`` events of ``batch_events`` after ``after`` (in no order: ``nid`` orders them): nid,
    type, stream and run (UUID text), occurred_at (and at_us), the decision's fields as the decisions table
    types them (candle_start also as candle_start_us), and the walk's other fields (start as start_us)."""
    return shared("page-decisions", after, lambda: con.sql(
        f"""SELECT notification_id AS nid, event_type AS type, CAST(j.originator_id AS VARCHAR) AS stream,
                   CAST(j.run_id AS VARCHAR) AS run, j.occurred_at AS occurred_at, epoch_us(j.occurred_at) AS at_us,
                   j.strategy AS strategy, j.model AS model, j.prompt_hash AS prompt_hash, j.product AS product,
                   j.candle_start AS candle_start, epoch_us(j.candle_start) AS candle_start_us, j.action AS action,
                   j.size_pct AS size_pct, j.take_profit_pct AS take_profit_pct, j.stop_loss_pct AS stop_loss_pct,
                   j.rationale AS rationale, j.latency_ms AS latency_ms, j.prompt_tokens AS prompt_tokens,
                   j.completion_tokens AS completion_tokens, j.cost AS cost, j.cached AS cached,
                   j.granularity AS granularity, epoch_us(j.start) AS start_us, j.close AS close, j.side AS side,
                   j.quantity AS quantity, j.price AS price, j.fee AS fee, j.fill_id AS fill_id, j.amount AS amount,
                   j.path AS path, j.new_value AS new_value, j.rule AS rule, j.numbers.limit_pct AS limit_pct
            FROM (SELECT notification_id, event_type, json_transform(payload, '{_FIELDS}') AS j FROM batch_events
                  WHERE notification_id > {int(after)} AND event_type = 'DecisionMade')"""
    ).to_arrow_table())


@contextmanager
def decisions_view(con: duckdb.DuckDBPyConnection, after: int) -> Iterator[str]:
    """``page_decisions(con, after)`` registered on ``con`` as the view ``page_decisions`` meanwhile."""
    con.register("page_decisions", page_decisions(con, after))
    try:
        yield "page_decisions"
    finally:
        con.unregister("page_decisions")
