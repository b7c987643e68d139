"""The auditor's Parquet export in typed columns an analyst can query, still verifiable link by link.

Backups keep the storage form (rows.SCHEMA: bare-hex stream ids, the payload as
bytes) because a restore writes it back verbatim. An audit export is read by
people and by DuckDB, Spark or pandas, so its Parquet file has one typed column
per envelope field and the payload as JSON text:

    notification_id  int64                      the position in the log
    occurred_at      timestamp[us, tz=UTC]      domain time of the event
    event_type       string                     OrderFilled, CandleClosed, ...
    stream_id        string                     the stream (aggregate) id, canonical UUID text
    version          int64                      the position in that stream
    actor            string
    correlation_id   string (null)              canonical UUID text
    causation_id     string (null)
    run_id           string (null)
    topic            string                     the stored topic (module:Class)
    payload          string                     the stored JSON, byte for byte (UTF-8)
    chain_link       string                     the chain link, hex

``to_storage`` turns such a batch back into the storage form (the stream id's
32 hex digits as the store keeps them, the payload's bytes), so ``audit verify
--export`` recomputes every link; ``check_derived`` makes sure the typed columns
say what the payload says, so an edit of a typed column alone is caught too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from infrastructure.backup.archive import ArchiveProblem
from infrastructure.backup.rows import rows_to_batch

ANALYST_SCHEMA = pa.schema(
    [
        ("notification_id", pa.int64()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("event_type", pa.string()),
        ("stream_id", pa.string()),
        ("version", pa.int64()),
        ("actor", pa.string()),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("run_id", pa.string()),
        ("topic", pa.string()),
        ("payload", pa.string()),
        ("chain_link", pa.string()),
    ]
)


class NotAnalystReady(ArchiveProblem):
    """A row cannot be shown in typed columns (its payload is not UTF-8 JSON with an envelope)."""


def _event_type(topic: str) -> str:
    from infrastructure.eventstore.mapper import event_class

    try:
        return event_class(topic).__name__
    except Exception:  # noqa: BLE001 - an unknown topic still exports, under its stored class name
        return topic.rpartition(":")[2] or topic


def _uuid_text(value: Any) -> str | None:
    return None if value is None else str(uuid.UUID(str(value)))


def derived(nid: int, oid: str, topic: str, state: bytes) -> tuple:
    """The typed columns of one stored row (all but version and the link)."""
    try:
        payload = state.decode("utf-8")
        data = orjson.loads(state)
        occurred = datetime.fromisoformat(data["occurred_at"])
    except (UnicodeDecodeError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise NotAnalystReady(f"notification {nid}: the payload is not UTF-8 JSON with occurred_at ({exc})") from None
    return (occurred, _event_type(topic), str(uuid.UUID(hex=oid)), data.get("actor"), _uuid_text(data.get("correlation_id")),
            _uuid_text(data.get("causation_id")), _uuid_text(data.get("run_id")), payload)


def to_analyst(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A storage-form batch (rows.SCHEMA) in typed columns (ANALYST_SCHEMA)."""
    ids, oids, versions, topics, states, links = (batch.column(i).to_pylist() for i in range(6))
    columns: list[list] = [[] for _ in ANALYST_SCHEMA]
    for nid, oid, version, topic, state, link in zip(ids, oids, versions, topics, states, links):
        occurred, kind, stream, actor, correlation, causation, run, payload = derived(nid, oid, topic, state)
        for column, value in zip(columns, (nid, occurred, kind, stream, version, actor, correlation, causation, run,
                                           topic, payload, link.hex() if link is not None else None)):
            column.append(value)
    return pa.RecordBatch.from_arrays([pa.array(c, f.type) for c, f in zip(columns, ANALYST_SCHEMA)], schema=ANALYST_SCHEMA)


def to_storage(batch: pa.RecordBatch, where: str) -> pa.RecordBatch:
    """An analyst batch back in the storage form, after checking its typed columns against its payloads."""
    rows = batch.to_pylist()
    ids, oids, versions, topics, states, links = [], [], [], [], [], []
    for row in rows:
        nid = row["notification_id"]
        try:
            oid = uuid.UUID(row["stream_id"]).hex
            state = row["payload"].encode("utf-8")
            link = bytes.fromhex(row["chain_link"]) if row["chain_link"] is not None else None
            expected = derived(nid, oid, row["topic"], state)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ArchiveProblem(f"{where}: notification {nid} cannot be read ({exc})") from None
        shown = (row["occurred_at"], row["event_type"], row["stream_id"], row["actor"], row["correlation_id"],
                 row["causation_id"], row["run_id"], row["payload"])
        if shown != expected:
            names = ("occurred_at", "event_type", "stream_id", "actor", "correlation_id", "causation_id", "run_id")
            wrong = [n for n, a, b in zip(names, shown, expected) if a != b]
            raise ArchiveProblem(f"{where}: notification {nid}: {', '.join(wrong)} differ(s) from its payload (edited)")
        ids.append(nid)
        oids.append(oid)
        versions.append(row["version"])
        topics.append(row["topic"])
        states.append(state)
        links.append(link)
    return rows_to_batch(ids, oids, versions, topics, states, links)
