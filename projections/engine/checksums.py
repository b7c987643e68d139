"""Checksums of the projected tables: catch-up and rebuild must give the same ones."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from projections.engine.base import Projection

__all__ = ["checksums", "table_digests"]


def table_digests(
    con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]
) -> dict[str, tuple[str, int]]:
    """(sha256 hex, row count) of each existing projected table.

    Each row is rendered as text (DECIMAL, UUID and UTC times print exactly)
    and hashed with md5; the row hashes are sorted (a total order of the
    table's content, whatever its physical order) and their concatenation is
    hashed with sha256. ``projection_tracking`` is left out: it holds wall-clock times.
    """
    con.execute("SET TimeZone = 'UTC'")
    there = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main'").fetchall()}
    out: dict[str, tuple[str, int]] = {}
    for table in (t for p in projections for t in p.tables if t in there):
        out[table] = tuple(con.execute(
            "SELECT sha256(coalesce(string_agg(h, '' ORDER BY h), '')), count(*) "
            f'FROM (SELECT md5(CAST(t AS VARCHAR)) AS h FROM "{table}" AS t)'
        ).fetchall()[0])
    return out


def checksums(con: duckdb.DuckDBPyConnection, projections: Sequence[Projection]) -> dict[str, str]:
    """sha256 hex of each projected table's rows (see ``table_digests``)."""
    return {table: digest for table, (digest, _) in table_digests(con, projections).items()}
