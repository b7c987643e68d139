"""Incidents notify at once, routed by severity to the webhook and SMTP; the trade-success-rate alert
is raised and resolved as events; the daily summary posts at its UTC time; failed deliveries are retried
and recorded. Real webhook receiver and SMTP server on loopback; the sink is what `tradecore run` builds."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from api.bootstrap import notification_sink, operations_notifier
from application.operations.controls import OperatorControls
from application.trading.loop import DeterministicIds
from domain.control import Run
from domain.events import EventMeta
from domain.order import Order
from infrastructure.monitoring.logs import JsonLineFormatter
from infrastructure.settings.loading import load_settings
from tests.support.recording import record
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import Receiver

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


class JsonLines(logging.Handler):
    """The JSON lines the log file would get, kept in memory."""

    def __init__(self):
        super().__init__()
        self.lines: list[dict] = []
        self.setFormatter(JsonLineFormatter())

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


class Clock:
    def __init__(self, at=T0):
        self.at = at

    def now(self):
        return self.at


@pytest.fixture
def channels(tmp_path, monkeypatch):
    webhook, smtp = Receiver(), SmtpServer(tmp_path).start()
    env = smtp.env()
    monkeypatch.setenv("SSL_CERT_FILE", env.pop("SSL_CERT_FILE"))  # STARTTLS verifies the server's certificate
    yield webhook, smtp, env
    smtp.stop()
    webhook.close()


def settings_for(webhook, env, **extra):
    return load_settings(env={**env, "SYSTEM__ALERT_WEBHOOK_URL": webhook.url, "MONITORING__WEBHOOK_RETRIES": "0",
                              "ALERTING__RETRY_WAIT_SECONDS": "0.01", "MONITORING__TRADE_SUCCESS_RATE_WINDOW": "3",
                              "MONITORING__CHECK_INTERVAL_SECONDS": "1", **extra})


def test_incidents_notify_at_once_p0_everywhere_p2_only_the_webhook(app, channels):
    webhook, smtp, env = channels
    clock = Clock()
    notifier = operations_notifier(settings_for(webhook, env), app, clock)
    controls = OperatorControls(app, clock, DeterministicIds(uuid.UUID(int=3)))
    p0 = controls.open_incident("P0", "exchange-outage", "Coinbase answers 503", "alice")
    controls.open_incident("P2", "slow-feed", "candles 20 s late", "bob")
    lines = JsonLines()
    logging.getLogger("tradecore.alerts").addHandler(lines)
    try:
        notifier.tick()
    finally:
        logging.getLogger("tradecore.alerts").removeHandler(lines)
    opened = next(line for line in lines.lines if "exchange-outage" in line["message"])
    assert opened["correlation_id"] == str(p0.incident_id)  # the log line names the incident
    controls.resolve_incident(p0.incident_id, "venue back", "alice")
    notifier.tick()
    notifier.sink.stop()
    texts = [post["json"]["text"] for post in webhook.posts]
    assert any("incident opened: exchange-outage" in t for t in texts)
    assert any("incident opened: slow-feed" in t for t in texts)
    assert any("[RESOLVED] incident" in t for t in texts)
    subjects = [m["Subject"] for m in smtp.messages]
    assert any("P0" in s and "exchange-outage" in s for s in subjects)
    assert not any("slow-feed" in s for s in subjects)  # P2: the channel only
    assert any("RESOLVED" in s for s in subjects)  # whoever was paged hears it is over
    assert smtp.logins and set(smtp.logins) == {"ok"}


def test_failed_delivery_is_retried_with_backoff_then_recorded_and_never_blocks(app, channels):
    webhook, smtp, env = channels
    webhook.statuses = [500, 500, 500, 500, 500]
    sink = notification_sink(settings_for(webhook, env, ALERTING__DELIVERY_ATTEMPTS="3"))
    started = datetime.now(timezone.utc)
    sink.alert("P3", "maintenance tonight", "db upgrade")
    assert datetime.now(timezone.utc) - started < timedelta(seconds=0.5)  # queued, not sent inline
    sink.stop()
    assert len(webhook.posts) == 3
    delivery = sink.sinks[1]
    assert delivery.failed and delivery.failed[0][0] == "webhook"


def _round_trip(app, run_id, entry: str, exit_: str, at: datetime):
    for side, price in (("BUY", entry), ("SELL", exit_)):
        order = Order.place(uuid.uuid4(), EventMeta(at, "system", None, None, run_id), product="BTC-USD", side=side,
                            order_type="MARKET", quantity=Decimal("0.1"))
        order.submit(EventMeta(at, "system", None, None, run_id))
        order.accept(EventMeta(at, "system", None, None, run_id), venue_order_id=f"v-{uuid.uuid4()}")
        order.fill(EventMeta(at, "system", None, None, run_id), fill_id=f"f-{uuid.uuid4()}", quantity=Decimal("0.1"),
                   price=Decimal(price), fee=Decimal("0.1"), fee_currency="USD", liquidity="TAKER")
        record(app, order)


def test_trade_success_rate_alert_is_raised_and_resolved_as_events(app, channels):
    webhook, smtp, env = channels
    clock = Clock()
    run_id = uuid.uuid4()
    record(app, Run.begin(run_id, EventMeta(T0, "system", run_id, None, run_id), mode="paper", product="BTC-USD",
                          granularity="1h", strategy="rules", config_hash="h", code_version="t"))
    notifier = operations_notifier(settings_for(webhook, env), app, clock)
    for _ in range(3):
        _round_trip(app, run_id, "100", "90", T0)  # three losers: 0 % < 40 %
    notifier.tick()
    for _ in range(2):
        _round_trip(app, run_id, "100", "120", T0)  # last three: 1 loser, 2 winners: 66.67 %
    clock.at += timedelta(seconds=5)
    notifier.tick()
    notifier.sink.stop()
    kinds = [(type(l.event).__name__, getattr(l.event, "check", None)) for l in app.iter_log()]
    assert ("AlertRaised", "trade_success_rate") in kinds and ("AlertResolved", "trade_success_rate") in kinds
    texts = [post["json"]["text"] for post in webhook.posts]
    assert any("trade success rate: 0.00%" in t for t in texts) and any("RESOLVED" in t for t in texts)
    assert not any("success rate" in m["Subject"] for m in smtp.messages)  # P2: webhook only


def test_daily_summary_posts_once_at_its_utc_time(app, channels):
    webhook, smtp, env = channels
    clock = Clock(T0.replace(hour=17, minute=59))
    notifier = operations_notifier(settings_for(webhook, env, ALERTING__DAILY_SUMMARY_AT="18:00"), app, clock)
    assert notifier.post_summary_if_due() is False
    clock.at = T0.replace(hour=18, minute=0, second=30)
    assert notifier.post_summary_if_due() is True
    assert notifier.post_summary_if_due() is False  # once a day
    notifier.sink.stop()
    (post,) = webhook.posts
    assert "Daily trading summary 2026-03-02" in post["json"]["text"] and "Fills: 0" in post["json"]["text"]
    assert smtp.messages == []
