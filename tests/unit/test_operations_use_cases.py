"""The operations' use cases over fake ports: anchors, backups, the doctor's checkup and the weekly maintenance check.

Each port is filled here by a small fake that records what it was asked; the real adapters are driven end to end by
tests/e2e/test_anchors_cli.py, test_backup_cli.py, test_doctor_cli.py and test_maintenance_cli.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from application.errors import AnchorProblem
from application.operations.anchors import LogNotIntact, Notary, anchor_head, check_anchors, intact_head
from application.operations.backups import BackupShelf, anchor_backup, leftovers_of
from application.operations.doctor import Check, checkup, store_head
from application.operations.maintenance import Finding, ok, weekly_check

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)


# --- anchors ------------------------------------------------------------------------------------


@dataclass
class Report:
    ok: bool
    last_id: int = 7
    head: str = "ab" * 32
    checked: int = 7
    bad_notification_id: int | None = None
    problem: str | None = None


@dataclass
class FakeNotary:
    report: Report
    stored: dict = field(default_factory=dict)  # where -> bytes
    written: list = field(default_factory=list)

    def port(self) -> Notary:
        return Notary(verify_chain=lambda store: self.report, sign=self.sign, write=self.write,
                      read_all=lambda source: sorted(self.stored.items()), read=self.read, check=self.check)

    def sign(self, notification_id, chain_head, created_at, store_name, key):
        return SimpleNamespace(notification_id=notification_id, chain_head=chain_head, created_at=created_at,
                               store=store_name, key=key)

    def write(self, anchor, target, now, retention_days):
        self.written.append((anchor, target, now, retention_days))
        return SimpleNamespace(where=target, retain_until=None, lock_mode=None)

    def read(self, data, where, key):
        if data == b"forged":
            raise AnchorProblem(f"anchor {where} has a bad signature: it was edited or forged")
        return SimpleNamespace(notification_id=int(data))

    def check(self, anchor, where, last_id, link_at):
        return None if anchor.notification_id <= last_id else f"the log no longer reaches anchor {where}"


def test_a_broken_chain_is_never_anchored():
    notary = FakeNotary(Report(ok=False, bad_notification_id=3, problem="link differs"))
    with pytest.raises(LogNotIntact, match="first bad notification id 3: link differs") as refused:
        intact_head(object(), notary.port())
    assert refused.value.report.bad_notification_id == 3
    assert notary.written == []


def test_an_intact_head_is_signed_and_written_where_asked():
    notary = FakeNotary(Report(ok=True, last_id=42, head="cd" * 32))
    report = intact_head(object(), notary.port())
    anchored = anchor_head(notary.port(), report.last_id, report.head, target="anchors/", now=NOW,
                           store_name="sqlite:///var/events.db", key=b"k", retention_days=30)
    assert (anchored.anchor.notification_id, anchored.anchor.chain_head) == (42, "cd" * 32)
    assert anchored.anchor.store == "sqlite:///var/events.db" and anchored.written.where == "anchors/"
    assert notary.written == [(anchored.anchor, "anchors/", NOW, 30)]


def test_every_anchor_is_checked_and_every_problem_listed():
    notary = FakeNotary(Report(ok=True), stored={"a/1.json": b"5", "a/2.json": b"forged", "a/3.json": b"9"})
    checked = check_anchors(notary.port(), "a", b"k", last_id=7, link_at=lambda n: None)
    assert (checked.source, checked.checked, checked.newest) == ("a", 3, 9)
    assert checked.problems == ["anchor a/2.json has a bad signature: it was edited or forged",
                                "the log no longer reaches anchor a/3.json"]
    assert checked.as_dict() == {"source": "a", "checked": 3, "newest": 9, "problems": checked.problems}


def test_a_backup_is_anchored_at_its_manifest_head_beside_it():
    notary = FakeNotary(Report(ok=True))
    created = SimpleNamespace(where="backups/tradecore-1", manifest=SimpleNamespace(reach=12, chain_head="ef" * 32,
                                                                                   source=None))
    anchored = anchor_backup(notary.port(), created, now=NOW, key=b"k", retention_days=3)
    assert (anchored.anchor.notification_id, anchored.anchor.chain_head, anchored.anchor.store) == (12, "ef" * 32, "")
    assert anchored.written.where == "backups/tradecore-1/anchor.json"


# --- backups ------------------------------------------------------------------------------------


def shelf(**given) -> BackupShelf:
    def unexpected(*args, **kwargs):
        raise AssertionError("not part of this use case")

    parts = {name: unexpected for name in BackupShelf.__dataclass_fields__}
    parts["kinds"] = ("daily", "weekly", "monthly")
    return BackupShelf(**{**parts, **given})


def test_leftovers_of_the_destination_are_listed_even_when_the_store_cannot_be_searched(tmp_path):
    def unreachable(archives, location, now):
        raise ConnectionError("connection refused")

    location = SimpleNamespace(redacted=lambda: "postgresql://u@db:5432/tc")
    found, note = leftovers_of(shelf(leftovers=unreachable, folder_leftovers=lambda root: [f"partial in {root}"]),
                               SimpleNamespace(root=tmp_path), location, NOW)
    assert found == [f"partial in {tmp_path}"]
    assert note == "restore leftovers in postgresql://u@db:5432/tc not checked: connection refused"
    found, note = leftovers_of(shelf(leftovers=unreachable), SimpleNamespace(location="s3://b/p"), location, NOW)
    assert found == [] and note.endswith("connection refused")  # S3 has no local partial folders


def test_leftovers_of_a_reachable_store_come_without_a_note(tmp_path):
    asked = []
    found, note = leftovers_of(shelf(leftovers=lambda archives, location, now: asked.append(now) or ["staging"]),
                               SimpleNamespace(root=tmp_path), SimpleNamespace(), NOW)
    assert (found, note, asked) == (["staging"], None, [NOW])


# --- doctor -------------------------------------------------------------------------------------


class FakeProbes:
    def __init__(self, store_figure: str = "sqlite:///e.db reachable, last id 41"):
        self.store_figure, self.asked = store_figure, []

    def store_checks(self, settings, open_store):
        self.asked.append("store")
        return [Check("store", "ok", self.store_figure)]

    def readmodel_check(self, settings, head):
        self.asked.append(("readmodel", head))
        return Check("readmodel", "ok", f"behind by {41 - (head or 0)}")

    def coinbase_checks(self, settings, client_for):
        self.asked.append(("coinbase", client_for(False)))
        raise TimeoutError("venue silent")

    def llm_check(self, settings):
        self.asked.append("llm")
        return Check("llm", "ok", "answers")

    def webhook_check(self, settings, send_test):
        self.asked.append(("webhook", send_test))
        return Check("webhook", "warn", "not set", "set SYSTEM__ALERT_WEBHOOK_URL")

    def smtp_check(self, settings, send_test):
        self.asked.append(("smtp", send_test))
        return Check("smtp", "ok", "not configured")

    def disk_check(self, settings, data_path):
        self.asked.append(("disk", data_path))
        return Check("disk", "ok", "10% used")

    def file_mode_checks(self, paths):
        self.asked.append(("modes", paths))
        return [Check("mode.store", "ok", "0o600")]


def test_checkup_runs_every_probe_in_order_and_measures_the_read_model_against_the_store_head():
    probes = FakeProbes()
    settings = SimpleNamespace(eventstore=SimpleNamespace(sqlite_path=Path("var/events.db")))
    report = checkup(probes, settings, open_store=None, client_for=lambda auth: f"client auth={auth}",
                     data_path=lambda s: Path("/data"), log_file=Path("var/logs/t.log"), config_file=None, send_test=True)
    assert [c.name for c in report.checks] == ["config", "store", "readmodel", "coinbase", "llm", "webhook", "smtp",
                                               "disk", "mode.store"]
    assert probes.asked[1] == ("readmodel", 41)
    assert probes.asked[2] == ("coinbase", "client auth=False")
    assert ("webhook", True) in probes.asked and ("disk", Path("/data")) in probes.asked
    assert probes.asked[-1] == ("modes", {"store": Path("var/events.db"), "log": Path("var/logs/t.log"), "config": None})
    coinbase = report.checks[3]
    assert (coinbase.status, coinbase.figure) == ("fail", "TimeoutError: venue silent")
    assert report.exit_code == 1


def test_the_store_head_is_read_only_from_a_reached_store():
    assert store_head([Check("store", "ok", "x reachable, last id 9")]) == 9
    assert store_head([Check("store", "fail", "x: refused, last id 9", "check")]) is None
    assert store_head([Check("store.chain", "ok", "last id 9")]) is None


# --- maintenance --------------------------------------------------------------------------------


class FakeKit:
    def __init__(self):
        self.asked, self.scanned, self.store_open = [], [], False

    def guarded_paths(self, **paths):
        self.asked.append(("guarded", paths))
        return [("store", paths["store_file"])] if paths["store_file"] else []

    def mode_findings(self, paths, fix):
        return [ok(f"mode.{label}", str(path)) for label, path in paths]

    def configured_secrets(self, settings):
        return [("exchange.api_key", b"k")]

    def payloads(self, store):
        assert self.store_open, "the payloads are read while the store is open"
        yield f"notification 1 of {store}", b"{}"

    def log_chunks(self, log_file):
        yield f"{log_file}:1", b"line"

    def backup_chunks(self, root):
        yield f"{root}/a/events.parquet", b"row"

    def file_chunks(self, path):
        yield f"{path}:1", b"exported"

    def scan(self, sources, secrets):
        self.scanned = [(label, [where for where, _ in chunks]) for label, chunks in sources]
        return [ok("secrets", f"{len(self.scanned)} source(s) clean")]

    def sqlite_upkeep(self, path, open_store, stamp):
        assert not self.store_open, "VACUUM swaps the file: the store is closed first"
        self.asked.append(("sqlite", path, stamp))
        return [ok("store.upkeep", "vacuumed")]

    def duckdb_checkpoint(self, path):
        return ok("readmodel.upkeep", str(path))

    def backup_findings(self, archives, keep_counts, store_location, now, fix):
        self.asked.append(("backups", keep_counts, fix))
        return [ok("backups.retention", "within")]

    def anchor_age(self, source, key, now):
        self.asked.append(("anchor", source, key))
        return ok("anchor.age", "1 day")


def maintenance_settings():
    return SimpleNamespace(readmodel=SimpleNamespace(path="var/readmodel.duckdb"),
                           backup=SimpleNamespace(dest="backups", keep_daily=30, keep_weekly=12, keep_monthly=12),
                           audit=SimpleNamespace(anchor_key=None))


def test_weekly_check_on_sqlite_scans_every_source_while_the_store_is_open_then_keeps_it_up(tmp_path):
    kit = FakeKit()

    @contextmanager
    def reading():
        kit.store_open = True
        yield "the log"
        kit.store_open = False

    location = SimpleNamespace(backend="sqlite", sqlite_path="var/events.db", is_memory=False)
    found = weekly_check(kit, maintenance_settings(), reading=reading, open_store=None,
                         archives=SimpleNamespace(root=tmp_path), store_location=location, log_file=Path("t.log"),
                         config_file=None, scan_files=[Path("export.jsonl")], now=NOW, fix=True)
    assert [f.check for f in found] == ["mode.store", "secrets", "store.upkeep", "readmodel.upkeep",
                                        "backups.retention", "anchor.age"]
    assert kit.scanned == [("event payloads", ["notification 1 of the log"]), ("logs", ["t.log:1"]),
                           ("backups", [f"{tmp_path}/a/events.parquet"]), ("exports", ["export.jsonl:1"])]
    assert ("sqlite", Path("var/events.db"), "20261206T030000Z") in kit.asked
    assert ("backups", {"daily": 30, "weekly": 12, "monthly": 12}, True) in kit.asked
    assert ("anchor", "backups", None) in kit.asked


def test_weekly_check_on_postgresql_skips_the_store_upkeep_and_s3_has_no_local_backups_to_scan():
    kit = FakeKit()

    @contextmanager
    def reading():
        kit.store_open = True
        yield "the log"
        kit.store_open = False

    location = SimpleNamespace(backend="postgresql", sqlite_path=None, is_memory=False,
                               redacted=lambda: "postgresql://u@db:5432/tc")
    found = weekly_check(kit, maintenance_settings(), reading=reading, open_store=None,
                         archives=SimpleNamespace(location="s3://b/p"), store_location=location, log_file=Path("t.log"),
                         config_file=None, now=NOW)
    upkeep = next(f for f in found if f.check == "store.upkeep")
    assert upkeep == Finding("store.upkeep", "skipped", "postgresql://u@db:5432/tc: PostgreSQL keeps itself "
                             "(autovacuum); its backups and replication are the database's")
    assert [label for label, _ in kit.scanned] == ["event payloads", "logs"]
    assert not any(step[0] == "sqlite" for step in kit.asked)
