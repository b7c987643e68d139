"""Anchors on S3 (moto's server on loopback): written with Object Lock retention where the bucket has it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest

boto3 = pytest.importorskip("boto3", reason="boto3 missing: pip install 'tradecore[s3]' (it is in the dev extra)")
pytest.importorskip("moto.server", reason="moto[server] missing (it is in the dev extra)")

from tests.e2e.test_anchors_cli import KEY, add_candles, cli, one_line  # noqa: E402
from tests.integration.test_backup_s3 import s3, s3_endpoint  # noqa: E402,F401 - fixtures
from tests.integration.test_tamper_evidence import Tamper  # noqa: E402


def _locked_bucket(rule: dict | None) -> str:
    client = boto3.client("s3")
    bucket = f"tc-lock-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    config: dict = {"ObjectLockEnabled": "Enabled"}
    if rule:
        config["Rule"] = {"DefaultRetention": rule}
    client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=config)
    return bucket


def test_an_anchor_on_an_object_lock_bucket_gets_the_buckets_retention_and_cannot_be_deleted(tmp_path, s3):
    _, env = s3
    bucket = _locked_bucket({"Mode": "GOVERNANCE", "Days": 3})
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 8)
    written = cli("audit", "anchor", "--to", f"s3://{bucket}/anchors", "--store", url, "--json", extra_env=env)
    assert written.returncode == 0, written.stderr
    doc = json.loads(written.stdout)
    assert doc["lock_mode"] == "GOVERNANCE" and doc["where"].startswith(f"s3://{bucket}/anchors/anchor-")
    key = doc["where"][len(f"s3://{bucket}/"):]
    client = boto3.client("s3")
    head = client.head_object(Bucket=bucket, Key=key)  # (moto answers get_object_retention with a 500)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    days = (head["ObjectLockRetainUntilDate"] - datetime.fromisoformat(doc["created_at"])).total_seconds() / 86400
    assert 2.9 <= days <= 3.1
    version = head["VersionId"]
    with pytest.raises(client.exceptions.ClientError):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert KEY not in client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_without_a_default_rule_anchors_are_kept_in_compliance_mode_for_the_configured_days(tmp_path, s3):
    _, env = s3
    bucket = _locked_bucket(None)
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 4)
    written = cli("audit", "anchor", "--to", f"s3://{bucket}/a", "--store", url, "--json",
                  extra_env={**env, "AUDIT__ANCHOR_RETENTION_DAYS": "9"})
    assert written.returncode == 0, written.stderr
    doc = json.loads(written.stdout)
    assert doc["lock_mode"] == "COMPLIANCE"
    assert (datetime.fromisoformat(doc["retain_until"]) - datetime.fromisoformat(doc["created_at"])).days == 9


def test_s3_anchors_reveal_a_cut_tail_and_backups_to_s3_anchor_themselves(tmp_path, s3):
    bucket, env = s3  # a bucket without Object Lock: anchors are written without retention
    url = f"sqlite:///{tmp_path}/events.db"
    add_candles(url, 0, 12)
    written = cli("audit", "anchor", "--to", f"s3://{bucket}/anchors", "--store", url, "--json", extra_env=env)
    assert written.returncode == 0 and json.loads(written.stdout)["retain_until"] is None
    backup = cli("backup", "create", "--dest", f"s3://{bucket}/nightly", "--store", url, "--json", extra_env=env)
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["anchor"].endswith("/anchor.json")
    ok = cli("audit", "verify", "--anchor", f"s3://{bucket}", "--store", url, extra_env=env)
    assert ok.returncode == 0 and "extends all 2 anchor(s)" in one_line(ok)
    Tamper(url).run(("DELETE FROM {t} WHERE {id} > %s", (6,)), ("DELETE FROM stored_events_chain WHERE notification_id > %s", (6,)))
    cut = cli("audit", "verify", "--anchor", f"s3://{bucket}/anchors", "--store", url, extra_env=env)
    assert cut.returncode == 1 and "no longer reaches" in one_line(cut)
