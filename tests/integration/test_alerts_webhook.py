"""The Slack-compatible webhook sink against a local webhook receiver (http.server on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from api.bootstrap import open_store
from application.health.watch import HealthSample, HealthThresholds, HealthWatch
from infrastructure.monitoring.alert_sinks import AlertDeliveryError, FanOutAlertSink, LogAlertSink, WebhookAlertSink, redact_url
from tests.support.webhook_receiver import SECRET, Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_an_alert_is_posted_as_slack_json(receiver):
    WebhookAlertSink(receiver.url, source="paper BTC-USD").alert("P1", "[P1] Disk usage: critical", "Disk 95%")
    (post,) = receiver.posts
    assert post["content_type"] == "application/json"
    body = post["json"]
    assert "[P1] Disk usage: critical" in body["text"] and "Disk 95%" in body["text"]
    assert body["attachments"][0]["color"] == "#ff5a00"
    assert {"title": "Severity", "value": "P1", "short": True} in body["attachments"][0]["fields"]
    assert receiver.paths == [f"/services/{SECRET}"]


def test_server_errors_are_retried_until_accepted(receiver):
    receiver.statuses = [500, 503]
    WebhookAlertSink(receiver.url, retries=3, backoff_s=0.01).alert("P2", "t", "d")
    assert [p["status"] for p in receiver.posts] == [500, 503, 200]


def test_a_refusal_is_not_retried_and_the_error_hides_the_url(receiver):
    receiver.statuses = [404]
    with pytest.raises(AlertDeliveryError) as exc:
        WebhookAlertSink(receiver.url, retries=3, backoff_s=0.01).alert("P2", "t", "d")
    assert len(receiver.posts) == 1
    assert "HTTP 404" in str(exc.value) and SECRET not in str(exc.value) and "127.0.0.1" in str(exc.value)


def test_giving_up_after_the_retries_names_the_host_only(receiver):
    receiver.statuses = [500, 500, 500]
    sink = WebhookAlertSink(receiver.url, retries=2, backoff_s=0.01)
    with pytest.raises(AlertDeliveryError) as exc:
        sink.alert("P0", "t", "d")
    assert len(receiver.posts) == 3 and SECRET not in str(exc.value) and SECRET not in repr(sink)


def test_a_webhook_that_does_not_answer_times_out(receiver):
    receiver.delay = 1.0
    with pytest.raises(AlertDeliveryError):
        WebhookAlertSink(receiver.url, timeout=0.2, retries=0).alert("P1", "t", "d")


def test_redact_url_keeps_scheme_and_host_only():
    assert redact_url(f"https://hooks.slack.com/services/{SECRET}") == "https://hooks.slack.com/…"


def test_fan_out_retries_only_the_sink_that_failed(receiver, caplog):
    receiver.statuses = [500]
    fan = FanOutAlertSink([LogAlertSink(), WebhookAlertSink(receiver.url, retries=0)])
    with caplog.at_level(logging.WARNING, logger="tradecore.alerts"):
        with pytest.raises(AlertDeliveryError):
            fan.alert("P1", "title", "details")
        fan.alert("P1", "title", "details")
    assert sum("ALERT P1: title" in r.getMessage() for r in caplog.records) == 1  # logged once, not twice
    assert [p["status"] for p in receiver.posts] == [500, 200]


class StepClock:
    def __init__(self):
        self.at = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

    def now(self):
        self.at += timedelta(seconds=30)
        return self.at


def test_watch_posts_one_alert_per_failure_and_one_recovery(receiver, tmp_path, caplog):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    clock = StepClock()
    cpu = {"value": D(95)}
    watch = HealthWatch(store, lambda: HealthSample(clock.now(), cpu=cpu["value"]), HealthThresholds(),
                        FanOutAlertSink([LogAlertSink(), WebhookAlertSink(receiver.url, retries=0)]), clock)
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(4):
                watch.check()
            cpu["value"] = D(20)
            for _ in range(3):
                watch.check()
    finally:
        store.close()
    texts = [p["json"]["text"] for p in receiver.posts]
    assert len(texts) == 2
    assert "[P2] CPU usage: critical" in texts[0] and "95%" in texts[0]
    assert "[RESOLVED] CPU usage" in texts[1] and receiver.posts[1]["json"]["attachments"][0]["color"] == "#2eb886"
    assert SECRET not in caplog.text
