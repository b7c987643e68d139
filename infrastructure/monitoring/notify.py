"""Notification channels beyond the webhook: email over SMTP, routing by severity, delivery off the hot path.

- ``EmailAlertSink`` sends one message per alert with ``smtplib``: STARTTLS (verified against the
  system's CAs, or ``SSL_CERT_FILE``) before login, the password a secret never logged.
- ``SeverityRouter``: P0 and P1 (and their recoveries, "OK") go to every channel; P2 and P3 to
  the webhook only (the operations manual's escalation: page for P0/P1, the channel for the rest).
- ``BackgroundDelivery`` queues each message and delivers it from a worker thread, retrying with
  exponential backoff; a message that still fails is logged at ERROR with its channel and counted in
  ``trading_bot_notifications_total{channel,outcome}``. ``alert()`` returns at once: a slow or dead
  channel never blocks trading.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage

from prometheus_client import Counter

from infrastructure.monitoring.calls import CALLS

log = logging.getLogger("tradecore.notify")

PAGING = ("P0", "P1", "OK")

DELIVERIES = Counter("trading_bot_notifications", "notifications by channel and outcome (sent, retried, failed)",
                     ["channel", "outcome"], registry=CALLS.registry)


class EmailAlertSink:
    """Sends alerts by email (SMTP with STARTTLS and login when configured)."""

    channel = "email"

    def __init__(self, host: str, port: int, *, sender: str, recipients: Sequence[str], user: str | None = None,
                 password: str | None = None, starttls: bool = True, timeout: float = 10.0, source: str = ""):
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self.user, self._password = user, password
        self.starttls, self.timeout, self.source = starttls, timeout, source

    def __repr__(self) -> str:
        return f"EmailAlertSink({self.host}:{self.port} -> {len(self.recipients)} recipient(s))"

    def alert(self, severity: str, title: str, details: str) -> None:
        message = EmailMessage()
        source = f" ({self.source})" if self.source else ""
        message["Subject"] = f"[tradecore {severity}] {title}{source}"
        message["From"], message["To"] = self.sender, ", ".join(self.recipients)
        message.set_content(f"{title}\n\n{details}\n\nSeverity: {severity}{source}\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self._password or "")
            smtp.send_message(message)


class SeverityRouter:
    """P0/P1 (and recoveries) to every channel, P2/P3 to the webhook channel only."""

    def __init__(self, webhook: object | None, others: Sequence[object]):
        self.webhook = webhook
        self.others = list(others)

    def targets(self, severity: str) -> list[object]:
        chosen = [self.webhook] if self.webhook is not None else []
        if severity in PAGING:
            chosen += self.others
        return chosen

    def alert(self, severity: str, title: str, details: str) -> None:
        for sink in self.targets(severity):
            sink.alert(severity, title, details)


class BackgroundDelivery:
    """Delivers each (channel, message) from a worker thread with retries; ``alert()`` never blocks.

    ``router`` picks the channels of a severity; ``attempts`` and ``first_wait`` (doubling) bound
    the retries of one message on one channel.
    """

    def __init__(self, router: SeverityRouter, *, attempts: int = 4, first_wait: float = 1.0, max_wait: float = 60.0):
        self.router = router
        self.attempts, self.first_wait, self.max_wait = attempts, first_wait, max_wait
        self._queue: queue.Queue = queue.Queue(maxsize=1000)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="tradecore-notify", daemon=True)
        self._thread.start()
        self.failed: list[tuple[str, str, str]] = []  # (channel, title, last error) of messages given up on

    def alert(self, severity: str, title: str, details: str) -> None:
        for sink in self.router.targets(severity):
            try:
                self._queue.put_nowait((sink, severity, title, details))
            except queue.Full:
                log.error("notification dropped (queue full): %s via %s", title, _channel(sink))
                DELIVERIES.labels(_channel(sink), "dropped").inc()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message was delivered or given up on (tests, clean shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def stop(self, timeout: float = 5.0) -> None:
        self.drain(timeout)
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            try:
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, sink, severity: str, title: str, details: str) -> None:
        channel = _channel(sink)
        error = None
        for attempt in range(1, self.attempts + 1):
            try:
                sink.alert(severity, title, details)
            except Exception as exc:  # noqa: BLE001 - retried, then recorded
                error = exc
                if attempt < self.attempts and not self._stopping.is_set():
                    DELIVERIES.labels(channel, "retried").inc()
                    wait = min(self.first_wait * 2 ** (attempt - 1), self.max_wait)
                    log.warning("notification %r via %s failed (attempt %d of %d), retrying in %.1fs: %s", title,
                                channel, attempt, self.attempts, wait, exc)
                    self._stopping.wait(wait)
                    continue
                break
            else:
                DELIVERIES.labels(channel, "sent").inc()
                log.info("notification %r sent via %s", title, channel,
                         extra={"fields": {"channel": channel, "severity": severity}})
                return
        DELIVERIES.labels(channel, "failed").inc()
        self.failed.append((channel, title, str(error)))
        log.error("notification %r via %s not delivered after %d attempt(s): %s", title, channel, self.attempts, error,
                  extra={"fields": {"channel": channel, "severity": severity, "error_kind": "delivery"}})


def _channel(sink: object) -> str:
    return getattr(sink, "channel", None) or type(sink).__name__.replace("AlertSink", "").lower() or "sink"


def notification_sink_from(settings, source: str = ""):
    """Every configured channel behind the severity router and the background delivery (never blocks).

    The log always hears everything; the webhook every severity; email (``[alerting]``) P0/P1 only.
    ``stop()`` ends the delivery thread.
    """
    from infrastructure.monitoring.alert_sinks import FanOutAlertSink, LogAlertSink, webhook_sink_from

    others = []
    a = settings.alerting
    if a.smtp_host:
        others.append(EmailAlertSink(a.smtp_host, a.smtp_port, sender=a.email_from, recipients=a.email_to,
                                     user=a.smtp_user, password=a.smtp_password.get_secret_value() if a.smtp_password else None,
                                     starttls=a.smtp_starttls, timeout=a.smtp_timeout_seconds, source=source))
    delivery = BackgroundDelivery(SeverityRouter(webhook_sink_from(settings, source), others), attempts=a.delivery_attempts,
                                  first_wait=a.retry_wait_seconds)

    class LogAndDeliver(FanOutAlertSink):
        def stop(self) -> None:
            delivery.stop()

    return LogAndDeliver([LogAlertSink(), delivery])
