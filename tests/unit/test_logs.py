"""The process log: JSON lines, secrets masked, a 0600 file rotated by size and pruned by age."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from infrastructure.monitoring.logs import (
    SecretMasker,
    bind,
    configure_logging,
    correlated,
    log_files,
    rotated_files,
)
from infrastructure.settings.loading import load_settings

PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oJzFh2cWuGl8oAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n"


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    bind(run_id=None, product=None)


def settings_for(tmp_path: Path, **env: str):
    return load_settings(env={"SYSTEM__LOG_FILE": str(tmp_path / "logs" / "tradecore.log"), **env})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_masker_hides_configured_secrets_and_secret_shaped_text():
    masker = SecretMasker(["hunter2-password", PEM])
    text = (f"login hunter2-password; key {PEM}; Authorization: Bearer abcdefghijklmnop.qrs; "
            "sk-live1234567890abcdef; api_key=ABCDEF123456; url https://bot:pw12345@db:5432/x; "
            "jwt eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcmdhbml6YXRpb25z.c2lnbmF0dXJl; "
            "organizations/test-org/apiKeys/1f2e3d4c-0000-1111-2222-333344445555")
    masked = masker.mask(text)
    for secret in ("hunter2-password", "MHcCAQEEIBkg4LVWM9nu", "abcdefghijklmnop", "1234567890abcdef", "ABCDEF123456",
                   "pw12345", "eyJhbGciOiJFUzI1NiJ9", "1f2e3d4c-0000"):
        assert secret not in masked, secret
    assert "****" in masked and "login" in masked


def test_a_line_is_json_with_utc_time_level_logger_run_product_and_correlation(tmp_path, restore_root):
    configure_logging(settings_for(tmp_path, SYSTEM__LOG_LEVEL="debug"), long_running=True)
    bind(run_id="run-1", product="BTC-USD")
    with correlated("decision-7"):
        logging.getLogger("tradecore.test").debug("venue call %s", "candles", extra={"fields": {"latency_ms": 12.5}})
    logging.getLogger("tradecore.test").info("no correlation here")
    first, second = lines(tmp_path / "logs" / "tradecore.log")
    assert first["time"].endswith("+00:00") and first["level"] == "DEBUG" and first["logger"] == "tradecore.test"
    assert (first["message"], first["run_id"], first["product"]) == ("venue call candles", "run-1", "BTC-USD")
    assert first["correlation_id"] == "decision-7" and first["latency_ms"] == 12.5
    assert "correlation_id" not in second


def test_level_setting_is_honoured(tmp_path, restore_root):
    configure_logging(settings_for(tmp_path, SYSTEM__LOG_LEVEL="WARNING"), long_running=True)
    logging.getLogger("tradecore.test").info("quiet")
    logging.getLogger("tradecore.test").warning("loud")
    assert [line["message"] for line in lines(tmp_path / "logs" / "tradecore.log")] == ["loud"]


def test_file_is_private_and_secrets_never_reach_it_even_in_tracebacks(tmp_path, restore_root):
    key = "sk-test-4f8a1c9e2b7d4e6fa0c3"
    configure_logging(settings_for(tmp_path, LLM__API_KEY=key, EXCHANGE__API_SECRET=PEM), long_running=True)
    log = logging.getLogger("tradecore.test")
    log.warning("calling with %s", key)
    try:
        raise RuntimeError(f"server said: bad key {PEM}")
    except RuntimeError:
        log.exception("call failed")
    path = tmp_path / "logs" / "tradecore.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert key not in text and "MHcCAQEEIBkg4LVWM9nu" not in text
    assert "RuntimeError" in lines(path)[1]["error"]


def test_file_rotates_by_size_and_old_rotations_are_deleted(tmp_path, restore_root):
    logs = tmp_path / "logs"
    logs.mkdir()
    stale = logs / "tradecore.log.20200101T000000000000Z"
    stale.write_text("{}\n")
    old = time.time() - 9 * 86400
    os.utime(stale, (old, old))
    settings = settings_for(tmp_path, SYSTEM__LOG_MAX_MB="1", SYSTEM__LOG_RETENTION_DAYS="7")
    configure_logging(settings, long_running=True)
    assert not stale.exists()  # pruned at start-up
    log = logging.getLogger("tradecore.test")
    for i in range(1200):
        log.info("%04d %s", i, "x" * 1000)
    rotated = rotated_files(logs / "tradecore.log")
    assert len(rotated) == 1 and rotated[0].stat().st_size >= 2**20
    assert stat.S_IMODE((logs / "tradecore.log").stat().st_mode) == 0o600
    messages = [line["message"][:4] for f in log_files(logs / "tradecore.log") for line in lines(f)]
    assert messages == [f"{i:04d}" for i in range(1200)]  # nothing lost across the rotation


def test_short_commands_log_to_stderr_unless_a_file_is_configured(tmp_path, restore_root, capsys):
    configure_logging(load_settings(env={}), long_running=False)
    logging.getLogger("tradecore.test").warning("to stderr")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["message"] == "to stderr"


def test_an_unwritable_log_file_falls_back_to_stderr_and_says_so(tmp_path, restore_root, capsys):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log folder should be")
    configure_logging(load_settings(env={"SYSTEM__LOG_FILE": str(blocked / "tradecore.log")}), long_running=True)
    logging.getLogger("tradecore.test").warning("still logged")
    err = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert "cannot write the log file" in err[0]["message"] and err[-1]["message"] == "still logged"
