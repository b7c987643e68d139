"""A paper run's log file: JSON lines with the run's id, each venue call, and not one secret.

The run is driven against the loopback Coinbase stand-in as in test_run_live.py, with every kind
of secret configured (exchange keys, an LLM key, the webhook URL, an API token, an SMTP password),
at DEBUG so every venue call's line is written.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys

from tests.e2e.test_run_live import ROOT, Run, paper_run_until_a_fill, run_env, started, stand  # noqa: F401 - fixture
from tests.support.webhook_receiver import SECRET as WEBHOOK_SECRET

LLM_KEY = "sk-proj-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
API_TOKEN = "operator-token-5d41402abc4b2a76b9719d911017c592"
SMTP_PASSWORD = "smtp-pa55word-never-logged"


def secret_env(stand, tmp_path) -> dict[str, str]:
    return run_env(stand, keys=True, SYSTEM__LOG_LEVEL="DEBUG", SYSTEM__LOG_FILE=str(tmp_path / "logs" / "bot.log"),
                   LLM__API_KEY=LLM_KEY, SYSTEM__ALERT_WEBHOOK_URL=f"http://127.0.0.1:9/services/{WEBHOOK_SECRET}",
                   SYSTEM__API_TOKENS=json.dumps([{"name": "ops", "token": API_TOKEN, "role": "operator"}]),
                   ALERTING__SMTP_HOST="127.0.0.1", ALERTING__SMTP_PORT="9", ALERTING__SMTP_USER="bot",
                   ALERTING__SMTP_PASSWORD=SMTP_PASSWORD, ALERTING__EMAIL_FROM="bot@example.com",
                   ALERTING__EMAIL_TO="ops@example.com")


def test_paper_run_leaves_a_private_json_log_without_any_secret_or_bearer_token(stand, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = secret_env(stand, tmp_path)
    run = paper_run_until_a_fill(stand, url, env)
    assert run.code == 0, run.output
    log = tmp_path / "logs" / "bot.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    for secret in (stand.api_key, LLM_KEY, WEBHOOK_SECRET, API_TOKEN, SMTP_PASSWORD, "PRIVATE KEY-----\nMH"):
        assert secret not in text
    for line in stand.api_secret.splitlines()[1:-1]:
        assert line not in text
    assert "Bearer " not in text and "eyJ" not in text
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    run_lines = [line for line in lines if line.get("run_id")]
    assert run_lines and all(line["product"] == "BTC-USD" for line in run_lines)
    messages = [line["message"] for line in lines]
    assert any("run" in m and "starting" in m for m in messages) and any(" stopped" in m for m in messages)
    calls = [line for line in lines if line["logger"] == "tradecore.calls"]
    assert calls and {c["endpoint"] for c in calls} >= {"get_public_candles"}
    assert all(c["level"] == "DEBUG" and c["mode"] == "paper" and c["latency_ms"] >= 0 for c in calls)
    # the analysis reads the same file
    analysis = subprocess.run([sys.executable, "-m", "api.cli", "logs", "analyze", "--json", "--since", "2000-01-01T00:00:00Z", "--store", url,
                               "--log-file", str(log), "--reports", str(tmp_path / "reports")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert analysis.returncode == 0, analysis.stderr
    report = json.loads(analysis.stdout)
    coinbase = {row["endpoint"]: row for row in report["calls"] if row["service"] == "coinbase"}
    assert coinbase["get_public_candles"]["calls"] >= 1 and coinbase["get_public_candles"]["p95_ms"] is not None
    assert report["trading"]["fills"] == 1 and report["trading"]["decisions"]
    assert list((tmp_path / "reports").glob("log_analysis_*.json"))


def test_run_serves_its_rest_api_on_the_configured_host_and_port(stand, tmp_path):
    import socket
    import urllib.error
    import urllib.request

    from tests.support.coinbase_standin import wait_for

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = run_env(stand, keys=False, SYSTEM__API_HOST="127.0.0.1", SYSTEM__API_PORT=str(port),
                  SYSTEM__LOG_FILE=str(tmp_path / "bot.log"), READMODEL__PATH=str(tmp_path / "rm.duckdb"))
    run = Run(["--mode", "paper", "--no-health", "--tick", "0.2", "--store", url], env)
    try:
        started(stand, run)
        wait_for(lambda: f"127.0.0.1:{port}" in run.output, timeout=30, what="the REST API to start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:  # 503 while degraded: still this run's API answering
            status = exc.code
        assert status in (200, 503)
    finally:
        assert run.stop() == 0, run.output


def test_a_p0_incident_opened_from_the_cli_pages_the_webhook_and_email_while_the_run_trades(stand, tmp_path):
    from tests.support.coinbase_standin import wait_for
    from tests.support.smtp_server import SmtpServer
    from tests.support.webhook_receiver import Receiver

    webhook, smtp = Receiver(), SmtpServer(tmp_path).start()
    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = run_env(stand, keys=False, SYSTEM__ALERT_WEBHOOK_URL=webhook.url, SYSTEM__LOG_FILE=str(tmp_path / "bot.log"),
                  **smtp.env())
    run = Run(["--mode", "paper", "--no-api", "--tick", "0.2", "--store", url], env)
    try:
        started(stand, run)
        opened = subprocess.run([sys.executable, "-m", "api.cli", "incident", "open", "--severity", "P0", "--kind",
                                 "exchange-outage", "--details", "venue answers 503", "--store", url],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert opened.returncode == 0, opened.stderr
        wait_for(lambda: any("incident opened: exchange-outage" in p["json"]["text"] for p in webhook.posts),
                 timeout=20, what="the webhook to hear of the incident")
        wait_for(lambda: any("exchange-outage" in m["Subject"] for m in smtp.messages), timeout=20,
                 what="the incident email")
    finally:
        code = run.stop()
        smtp.stop()
        webhook.close()
    assert code == 0, run.output
