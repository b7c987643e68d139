"""`tradecore doctor`'s verdicts: a probe that raises is one failed line; modes and disk say what to do."""

from __future__ import annotations

import os

from application.operations.doctor import examine, ok, warn
from infrastructure.monitoring.doctor_probes import disk_check, file_mode_checks
from infrastructure.settings.loading import load_settings


def test_a_probe_that_raises_is_a_failed_check_and_the_exit_code_says_so():
    def broken():
        raise ConnectionError("db down")

    report = examine([("config", lambda: ok("config", "valid")), ("store", broken),
                      ("disk", lambda: warn("disk", "85%", "free space"))])
    assert [(c.name, c.status) for c in report.checks] == [("config", "ok"), ("store", "fail"), ("disk", "warn")]
    assert "ConnectionError: db down" in report.checks[1].figure
    assert report.exit_code == 1 and report.status == "fail"
    assert examine([("disk", lambda: warn("disk", "85%", "free space"))]).exit_code == 0  # a warning is not a failure


def test_a_file_others_can_read_is_a_warning_naming_the_chmod(tmp_path):
    private, shared = tmp_path / "events.db", tmp_path / "tradecore.log"
    private.write_text("")
    shared.write_text("")
    os.chmod(private, 0o600)
    os.chmod(shared, 0o644)
    checks = {c.name: c for c in file_mode_checks({"store": private, "log": shared, "config": None})}
    assert checks["mode.store"].status == "ok"
    assert checks["mode.log"].status == "warn" and checks["mode.log"].action == f"chmod 600 {shared}"
    assert "mode.config" not in checks


def test_disk_above_the_alert_level_fails(tmp_path):
    strict = load_settings(env={"MONITORING__DISK_TARGET_PCT": "0.01", "MONITORING__DISK_ALERT_PCT": "0.02"})
    assert disk_check(strict, tmp_path).status == "fail"
    assert disk_check(load_settings(env={"MONITORING__DISK_TARGET_PCT": "99.98", "MONITORING__DISK_ALERT_PCT": "99.99"}),
                      tmp_path).status == "ok"
