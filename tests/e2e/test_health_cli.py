"""`tradecore health [--watch]` through the real CLI, alerting a local webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hooks-secret-7f3a9c"

# Machine checks judged against bounds no machine reaches, so only what a test sets can fail.
CALM = {
    "MONITORING__CPU_ALERT_PCT": "100", "MONITORING__CPU_TARGET_PCT": "100",
    "MONITORING__SYSTEM_MEMORY_ALERT_PCT": "100", "MONITORING__SYSTEM_MEMORY_TARGET_PCT": "100",
    "MONITORING__MEMORY_ALERT_MB": "1000000", "MONITORING__MEMORY_TARGET_MB": "1000000",
    "MONITORING__DISK_ALERT_PCT": "100", "MONITORING__DISK_TARGET_PCT": "100",
}
FULL_DISK = {"MONITORING__DISK_ALERT_PCT": "0.001", "MONITORING__DISK_TARGET_PCT": "0.0005"}


class Receiver:
    def __init__(self):
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Cli:
    def __init__(self, tmp_path: Path):
        self.url = f"sqlite:///{tmp_path}/var/events.db"
        from api.bootstrap import open_store

        open_store(self.url).close()  # `health` checks a store; it never creates one
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **CALM}
        self.outputs: list[str] = []

    def __call__(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "api.cli", "health", *args, "--store", self.url]
        result = subprocess.run(argv, cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True,
                                timeout=120)
        self.outputs += [result.stdout, result.stderr]
        return result

    def events(self, type_: str) -> list[dict]:
        argv = [sys.executable, "-m", "api.cli", "events", "--type", type_, "--json", "--store", self.url]
        result = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def cli(tmp_path):
    runner = Cli(tmp_path)
    yield runner
    for text in runner.outputs:  # the webhook URL is a credential: never printed, not even on failure
        assert TOKEN not in text


def test_one_shot_on_a_healthy_machine_exits_0_and_skips_what_it_cannot_measure(cli):
    result = cli()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("health: healthy")
    assert "skipped" in result.stdout and "no paper or live run in progress" in result.stdout
    assert cli.events("AlertRaised") == []  # a one-shot check records nothing


def test_one_shot_json_reports_a_failing_check_and_exits_1(cli):
    result = cli("--json", env=FULL_DISK)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    disk = next(c for c in report["checks"] if c["name"] == "disk")
    assert report["status"] == "unhealthy"
    assert (disk["status"], disk["severity"], disk["threshold"]) == ("critical", "P1", 0.001)


def test_watch_alerts_the_webhook_once_and_a_later_watch_sends_the_recovery(cli, receiver):
    hook = {"SYSTEM__ALERT_WEBHOOK_URL": receiver.url}
    first = cli("--watch", "--interval", "0.1", "--ticks", "3", env={**FULL_DISK, **hook})
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 3 and "raised disk (P1)" in first.stdout
    assert len(receiver.posts) == 1
    assert "[P1] Disk usage: critical" in receiver.posts[0]["json"]["text"]
    raised = cli.events("AlertRaised")
    assert [(e["payload"]["check"], e["payload"]["severity"]) for e in raised] == [("disk", "P1")]

    # Another process, the disk back within target: the alert state lives in the store, so it resolves.
    second = cli("--watch", "--interval", "0.1", "--ticks", "2", "--json", env=hook)
    assert second.returncode == 0, second.stderr
    ticks = [json.loads(line) for line in second.stdout.splitlines()]
    assert ticks[0]["resolved"] == [{"check": "disk", "severity": "P1"}] and ticks[1]["resolved"] == []
    assert len(receiver.posts) == 2 and "[RESOLVED] Disk usage" in receiver.posts[1]["json"]["text"]
    assert len(cli.events("AlertResolved")) == 1


def test_watch_keeps_going_when_the_webhook_is_down_and_never_prints_its_url(cli, receiver):
    receiver.close()  # nobody listens at the URL any more
    result = cli("--watch", "--interval", "0.1", "--ticks", "2",
                 env={**FULL_DISK, "SYSTEM__ALERT_WEBHOOK_URL": receiver.url, "MONITORING__WEBHOOK_RETRIES": "0",
                      "MONITORING__WEBHOOK_TIMEOUT_SECONDS": "1"})
    assert result.returncode == 0, result.stderr
    assert "waiting for the webhook" in result.stdout
    assert "alert not delivered" in result.stderr and "http://127.0.0.1:" in result.stderr
    assert len(cli.events("AlertRaised")) == 1


def test_bad_options_exit_2_with_a_clear_message(cli):
    result = cli("--interval", "5")
    assert result.returncode == 2 and "--interval needs --watch" in result.stderr
