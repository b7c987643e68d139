"""Backups to S3 (the `tradecore[s3]` extra): moto's server on loopback, driven through boto3 and the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3", reason="boto3 missing: pip install 'tradecore[s3]' (it is in the dev extra)")
moto_server = pytest.importorskip("moto.server", reason="moto[server] missing (it is in the dev extra)")

from api.bootstrap import open_store  # noqa: E402
from domain.events import EventMeta  # noqa: E402
from domain.market import Candle  # noqa: E402
from infrastructure.backup.archive import ArchiveProblem  # noqa: E402
from infrastructure.backup.operations import create_backup, prune, restore_archive, verify_archive  # noqa: E402
from infrastructure.backup.storage import S3Archives, list_archives, open_archives  # noqa: E402
from tests.conftest import T0  # noqa: E402
from tests.integration.test_backup import NOW, raw_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A fresh bucket; the environment boto3 (and the CLI) read: dummy keys, the loopback endpoint."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"tc-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket, env


def seed(url: str, product: str, count: int) -> None:
    app = open_store(url)
    app.record_candles([Candle(product, "1h", T0 + timedelta(hours=i), D("10"), D("12"), D("9"), D("11"), D("1"))
                        for i in range(count)], EventMeta(T0, actor="market"))
    app.close()


def test_full_and_incremental_backups_to_s3_verify_restore_and_prune(tmp_path, s3):
    bucket, _ = s3
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url, "BTC-USD", 120)
    archives = open_archives(f"s3://{bucket}/nightly")
    assert isinstance(archives, S3Archives)
    app = open_store(url)
    full = create_backup(app, archives, kind="daily", now=NOW)
    app.close()
    seed(url, "ETH-USD", 30)
    app = open_store(url)
    incr = create_backup(app, archives, kind="daily", since_last=True, now=NOW + timedelta(hours=1))
    app.close()
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"nightly/{n}/{f}" for n in (full.name, incr.name) for f in ("events.parquet", "manifest.json"))
    assert [a.name for a in list_archives(archives)] == [full.name, incr.name]
    assert verify_archive(archives, incr.name).event_count == 150

    target = f"sqlite:///{tmp_path}/restored.db"
    restored = restore_archive(archives, incr.name, target, open_store=open_store, now=NOW)
    assert restored.events == 150 and raw_rows(target) == raw_rows(url)

    plan = prune(archives, {"daily": 1, "weekly": 0, "monthly": 0})
    assert plan.delete == [] and set(plan.keep) == {full.name, incr.name}  # the incremental needs its parent
    app = open_store(url)
    newest = create_backup(app, archives, kind="daily", now=NOW + timedelta(days=1))
    app.close()
    plan = prune(archives, {"daily": 1, "weekly": 0, "monthly": 0})
    assert sorted(plan.delete) == sorted([full.name, incr.name])
    assert [a.name for a in list_archives(archives)] == [newest.name]


def test_an_s3_archive_without_its_manifest_is_incomplete(tmp_path, s3):
    bucket, _ = s3
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key="b/tradecore-20261124T030000Z-daily/events.parquet", Body=b"PAR1")
    archives = open_archives(f"s3://{bucket}/b")
    listed = list_archives(archives)
    assert [(a.name, a.manifest) for a in listed] == [("tradecore-20261124T030000Z-daily", None)]
    with pytest.raises(ArchiveProblem, match="no manifest"):
        verify_archive(archives, "tradecore-20261124T030000Z-daily")


def test_the_cli_backs_up_to_s3_and_restores_from_it(tmp_path, s3):
    bucket, env = s3
    url = f"sqlite:///{tmp_path}/events.db"
    seed(url, "BTC-USD", 50)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})

    dest = f"s3://{bucket}/cli"
    created = cli("backup", "create", "--store", url, "--dest", dest, "--json")
    assert created.returncode == 0, created.stderr
    name = json.loads(created.stdout)["name"]
    listed = cli("backup", "list", "--dest", dest, "--json")
    assert [r["name"] for r in json.loads(listed.stdout)] == [name]
    verified = cli("backup", "verify", f"{dest}/{name}")
    assert verified.returncode == 0 and "archive ok" in verified.stdout
    target = f"sqlite:///{tmp_path}/restored.db"
    restored = cli("backup", "restore", f"{dest}/{name}", "--to", target, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["tables"]["candles"]["rows"] == 50
    assert raw_rows(target) == raw_rows(url)
