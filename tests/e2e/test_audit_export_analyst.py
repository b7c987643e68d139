"""The auditor's Parquet export is analyst-ready (typed columns DuckDB's JSON functions work on) and still
verifiable link by link; an edit of a typed column alone is caught too (issue 17 item 14)."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infrastructure.backup.archive import Manifest, sha256_file, write_manifest
from tests.e2e.test_audit_export_cli import cli, store  # noqa: F401 - the module's store fixture


@pytest.fixture(scope="module")
def exported(store, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("analyst") / "log.parquet"
    done = cli("audit", "export", "--format", "parquet", "--output", str(out), "--store", store)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def export(exported, tmp_path) -> Path:
    """A copy of the module's export and its manifest in the test's own folder: the test edits its copy."""
    for path in exported.parent.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    return tmp_path / exported.name


def test_the_parquet_export_has_typed_columns_duckdb_can_query(export):
    con = duckdb.connect()
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{export}')").fetchall())
    assert types["occurred_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["notification_id"] == "BIGINT" and types["version"] == "BIGINT"
    assert {"event_type", "stream_id", "actor", "correlation_id", "causation_id", "run_id", "payload", "chain_link"} <= set(types)
    rows = con.execute(
        f"SELECT event_type, stream_id, json_extract_string(payload, '$.close') AS close, actor, chain_link "
        f"FROM '{export}' WHERE event_type = 'CandleClosed' ORDER BY notification_id LIMIT 2"
    ).fetchall()
    assert [r[2] for r in rows] == ["11", "11"]  # JSON functions work on the payload
    assert all(str(uuid.UUID(r[1])) == r[1] for r in rows)  # canonical UUID text
    assert rows[0][3] == "market" and len(rows[0][4]) == 66 and rows[0][4].startswith("02")
    halted = con.execute(f"SELECT actor, occurred_at FROM '{export}' WHERE event_type = 'TradingHalted'").fetchone()
    assert halted[0] == "operator:test" and halted[1].tzinfo is not None


def test_the_analyst_export_verifies(export):
    checked = cli("audit", "verify", "--export", str(export))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "export ok" in checked.stdout


def _reseal(path: Path, table: pa.Table) -> None:
    """Rewrite the file and its manifest's checksum: what someone editing the export would do."""
    pq.write_table(table, path)
    mpath = path.with_name(path.name + ".manifest.json")
    manifest = Manifest.from_bytes(mpath.read_bytes(), mpath.name)
    entry = dataclasses.replace(manifest.files[0], sha256=sha256_file(path), bytes=path.stat().st_size)
    write_manifest(mpath, dataclasses.replace(manifest, files=[entry]))


def _with_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


@pytest.mark.parametrize("column, expected", [("actor", "actor differ(s) from its payload"),
                                              ("payload", "does not match its chain link")])
def test_an_edited_and_resealed_export_is_caught(export, column, expected):
    table = pq.read_table(export)
    values = table.column(column).to_pylist()
    values[5] = "intruder" if column == "actor" else values[5].replace('"close":"11"', '"close":"99"')
    _reseal(export, _with_column(table, column, values))
    checked = cli("audit", "verify", "--export", str(export))
    assert checked.returncode == 1
    message = " ".join((checked.stdout + checked.stderr).split())
    assert "notification 6" in message and expected in message
