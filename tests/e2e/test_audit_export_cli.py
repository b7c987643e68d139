"""`tradecore audit export` and `tradecore audit verify --export`: an export an auditor can check on its own."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from api.bootstrap import open_store
from domain.events import EventMeta
from domain.market import Candle
from infrastructure.backup.archive import Manifest, sha256_file
from tests.conftest import T0

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('audit')}/events.db"
    app = open_store(url)
    app.record_candles([Candle("BTC-USD", "1h", T0 + timedelta(hours=i), D("10"), D("12"), D("9"), D("11"), D("1"))
                        for i in range(48)], EventMeta(T0, actor="market"))  # each dated at its close: T0+1h .. T0+48h
    app.operator_halt("audit drill", "P2", EventMeta(T0 + timedelta(hours=49), actor="operator:test"))
    app.close()
    return url


def export(store: str, output: Path, *extra: str) -> dict:
    result = cli("audit", "export", "--store", store, "--output", str(output), *extra, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def verify(path: Path) -> subprocess.CompletedProcess:
    return cli("audit", "verify", "--export", str(path))


def test_a_jsonl_export_of_the_whole_log_verifies_and_carries_ids_topics_payloads_and_links(tmp_path, store):
    out = export(store, tmp_path / "log.jsonl", "--format", "jsonl")
    app = open_store(store)
    head_id, head = app.recorder.chain_head()
    app.close()
    assert (out["events"], out["first_id"], out["last_id"], out["chain_head"]) == (head_id, 1, head_id, head.hex())
    lines = [orjson.loads(line) for line in (tmp_path / "log.jsonl").read_bytes().splitlines()]
    assert [r["notification_id"] for r in lines] == list(range(1, head_id + 1))
    assert lines[0]["topic"] == "domain.market:CandleClosed" and json.loads(lines[0]["state"])["close"] == "11"
    assert lines[-1]["link"] == head.hex()
    manifest = json.loads((tmp_path / "log.jsonl.manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == sha256_file(tmp_path / "log.jsonl") == out["sha256"]
    assert (manifest["event_count"], manifest["first_id"], manifest["last_id"]) == (head_id, 1, head_id)
    result = verify(tmp_path / "log.jsonl")
    assert result.returncode == 0 and "export ok" in result.stdout


def test_a_time_slice_in_parquet_is_contiguous_and_verifies_from_its_chain_start(tmp_path, store):
    out = export(store, tmp_path / "day.parquet", "--format", "parquet", "--from", "2024-01-01T10:00:00Z",
                 "--to", "2024-01-01T20:00:00Z")
    assert (out["first_id"], out["last_id"], out["events"]) == (10, 19, 10)  # candles closing 10:00 .. 19:00
    table = pq.read_table(tmp_path / "day.parquet")
    assert table.column("notification_id").to_pylist() == list(range(10, 20))
    assert verify(tmp_path / "day.parquet").returncode == 0
    gz = export(store, tmp_path / "tail.jsonl.gz", "--from", "2024-01-02T00:00:00Z")
    assert gz["first_id"] == 24 and gz["last_id"] > 48
    with gzip.open(tmp_path / "tail.jsonl.gz") as f:
        assert orjson.loads(f.readline())["notification_id"] == 24
    assert verify(tmp_path / "tail.jsonl.gz").returncode == 0


def _fails(path: Path, *expected: str) -> None:
    result = verify(path)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    for text in expected:
        assert text in message, message


def test_an_edited_payload_fails_the_checksum_and_with_the_checksum_redone_fails_the_chain(tmp_path, store):
    path = tmp_path / "log.jsonl"
    export(store, path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'\\"close\\":\\"11\\"', b'\\"close\\":\\"99\\"')
    path.write_bytes(b"".join(lines))
    _fails(path, "sha256")
    mpath = tmp_path / "log.jsonl.manifest.json"
    manifest = Manifest.from_bytes(mpath.read_bytes(), "m")
    manifest.files[0].sha256, manifest.files[0].bytes = sha256_file(path), path.stat().st_size
    mpath.write_bytes(manifest.to_bytes())
    _fails(path, "notification 5 does not match its chain link")


def test_a_dropped_line_a_missing_manifest_and_an_edited_manifest_are_named(tmp_path, store):
    path = tmp_path / "log.jsonl"
    export(store, path)
    mpath = tmp_path / "log.jsonl.manifest.json"
    original_manifest = mpath.read_bytes()
    mpath.write_bytes(original_manifest.replace(b'"event_count": 50', b'"event_count": 49'))
    _fails(path, "manifest's own checksum")
    mpath.unlink()
    _fails(path, "log.jsonl.manifest.json is missing")
    mpath.write_bytes(original_manifest)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:7] + lines[8:]))  # one event removed, checksums redone
    manifest = Manifest.from_bytes(original_manifest, "m")
    manifest.files[0].sha256, manifest.files[0].bytes = sha256_file(path), path.stat().st_size
    mpath.write_bytes(manifest.to_bytes())
    _fails(path, "notification 9 does not match its chain link")


def test_bad_export_options_exit_2(tmp_path, store):
    result = cli("audit", "export", "--store", store, "--output", str(tmp_path / "x"), "--format", "csv")
    assert result.returncode == 2 and "--format" in result.stderr
    result = cli("audit", "export", "--store", store, "--output", str(tmp_path / "x"), "--from", "yesterday")
    assert result.returncode == 2 and "--from" in result.stderr
