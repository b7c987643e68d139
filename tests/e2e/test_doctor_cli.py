"""`tradecore doctor` against loopback stand-ins: Coinbase, an OpenAI-compatible server, the webhook, SMTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_llm_strategy import FakeOpenAI, error
from tests.support.coinbase_standin import CoinbaseStandIn
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def services(tmp_path):
    coinbase = CoinbaseStandIn(tmp_path).start()
    coinbase.clock_offset = timedelta(0)  # the stand-in's venue clock ticks, on time
    llm = FakeOpenAI()
    threading.Thread(target=llm.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    webhook = Receiver()
    smtp = SmtpServer(tmp_path).start()
    yield coinbase, llm, webhook, smtp
    smtp.stop()
    webhook.close()
    llm.httpd.shutdown()
    llm.httpd.server_close()
    coinbase.stop()


def doctor(env: dict[str, str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "doctor", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def healthy_env(tmp_path, coinbase, llm, webhook, smtp) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE__", "SYSTEM__", "TRADING__", "LLM__",
                                                                    "ALERTING__", "EVENTSTORE__", "READMODEL__"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(coinbase.env())
    env.update(smtp.env())
    env.update({"EVENTSTORE__URL": f"sqlite:///{tmp_path / 'events.db'}", "TRADING__STRATEGY": "llm",
                "LLM__BASE_URL": llm.url, "LLM__API_KEY": "sk-test-4f8a1c9e2b7d4e6fa0c3", "LLM__MODEL": "gpt-4o-mini",
                "SYSTEM__ALERT_WEBHOOK_URL": webhook.url, "EXCHANGE__RETRY_WAIT_SECONDS": "0.05",
                "SYSTEM__LOG_FILE": str(tmp_path / "doctor.log")})
    return env


def store_with_events(tmp_path: Path, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "api.cli", "halt", "--reason", "doctor test", "--severity", "P3"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (tmp_path / "events.db").chmod(0o600)


def test_doctor_passes_against_reachable_services_and_sends_nothing(services, tmp_path):
    coinbase, llm, webhook, smtp = services
    env = healthy_env(tmp_path, *services)
    store_with_events(tmp_path, env)
    coinbase.clock_offset = timedelta(0)  # on time however long the doctor takes to start
    result = doctor(env, "--json", tmp_path=tmp_path)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("config", "store", "store.chain", "store.write", "coinbase.clock", "coinbase.auth", "llm", "webhook",
                 "smtp", "disk", "mode.store"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "clock skew" in checks["coinbase.clock"]["figure"]
    assert "account(s) readable" in checks["coinbase.auth"]["figure"]
    assert checks["readmodel"]["status"] == "warn"  # nothing has projected the log yet
    assert webhook.posts == [] and smtp.messages == []  # reachable, nothing sent
    assert smtp.logins == ["ok"]
    assert llm.requests and llm.requests[-1]["body"]["max_tokens"] == 1  # no model list here: one token asked
    assert not coinbase.auth_failures


def test_send_test_posts_to_the_webhook_and_mails_the_recipients(services, tmp_path):
    coinbase, llm, webhook, smtp = services
    env = healthy_env(tmp_path, *services)
    result = doctor(env, "--send-test", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(webhook.posts) == 1 and "test message" in webhook.posts[0]["json"]["text"]
    (mail,) = smtp.messages
    assert mail["To"] == "ops@example.com" and mail["Subject"].startswith("tradecore doctor")
    assert "ok" in result.stdout and "smtp" in result.stdout


def test_failures_name_what_to_do_and_exit_1(services, tmp_path):
    coinbase, llm, webhook, smtp = services
    env = healthy_env(tmp_path, *services)
    env["ALERTING__SMTP_PASSWORD"] = "wrong-password"
    env["EXCHANGE__API_SECRET"] = _other_key()  # a key the venue does not know
    coinbase.clock_offset = -timedelta(seconds=90)  # our clock runs 90 s ahead of the venue's
    llm.script = [error(401, "invalid api key")]
    result = doctor(env, "--json", tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["coinbase.clock"]["status"] == "fail" and "clock skew +9" in checks["coinbase.clock"]["figure"]
    assert checks["smtp"]["status"] == "fail" and "ALERTING__SMTP_PASSWORD" in checks["smtp"]["action"]
    assert checks["coinbase.auth"]["status"] == "fail" and "key" in checks["coinbase.auth"]["action"]
    assert checks["llm"]["status"] == "fail" and "LLM__API_KEY" in checks["llm"]["action"]
    log = (tmp_path / "doctor.log").read_text() if (tmp_path / "doctor.log").exists() else ""
    for secret in ("wrong-password", "sk-test-4f8a1c9e2b7d4e6fa0c3"):
        assert secret not in result.stdout + result.stderr + log


def test_invalid_configuration_exits_2_naming_the_setting(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATA__")}
    env["DATA__INDICATOR_WARMUP"] = "10"
    result = doctor(env, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "data.indicator_warmup" in result.stdout and "at least 59" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def _other_key() -> str:
    from tests.support.coinbase_standin import make_api_key

    return make_api_key()[1]


@pytest.mark.postgres
def test_doctor_checks_a_postgresql_store(tmp_path):
    from tests.conftest import fresh_pg_url, require_postgres

    require_postgres()
    url = fresh_pg_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTSTORE__", "SYSTEM__"))}
    env.update({"EVENTSTORE__URL": url, "PYTHONPATH": str(ROOT), "EXCHANGE__BASE_URL": "127.0.0.1:9",
                "EXCHANGE__MAX_ATTEMPTS": "1"})
    subprocess.run(
        [sys.executable, "-m", "api.cli", "halt", "--reason", "doctor test", "--severity", "P3"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=True)
    result = doctor(env, "--json", tmp_path=tmp_path)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["store"]["status"] == "ok" and checks["store.chain"]["status"] == "ok"
    assert checks["store.write"]["status"] == "ok" and "primary server" in checks["store.write"]["figure"]
    assert checks["coinbase"]["status"] == "fail" and result.returncode == 1  # nothing listens on port 9
