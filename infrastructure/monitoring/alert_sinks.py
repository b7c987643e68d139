"""Alert sinks: a Slack-compatible webhook, the log, and both at once.

``WebhookAlertSink`` POSTs ``{"text": ..., "attachments": [...]}`` (what Slack,
Mattermost, Rocket.Chat and Discord's ``/slack`` endpoint accept) with a
timeout, retrying connection errors, timeouts, 429 and 5xx with exponential
backoff (tenacity). A 4xx other than 429 is not retried: the URL or payload is
wrong and repeating it cannot help. The webhook URL is a credential (whoever
has it can post to the channel): it is never logged or shown in full, only
its scheme and host (``redact_url``). Messages carry check names and numbers,
never settings or secrets.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

from tenacity import RetryError, retry_if_exception, stop_after_attempt, wait_exponential, Retrying

log = logging.getLogger("tradecore.alerts")

COLORS = {"P0": "#d00000", "P1": "#ff5a00", "P2": "#ffb000", "P3": "#4a90d9", "OK": "#2eb886"}
ICONS = {"P0": ":rotating_light:", "P1": ":warning:", "P2": ":large_orange_diamond:", "P3": ":information_source:",
         "OK": ":white_check_mark:"}


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (after retries); the message names the host, never the URL."""


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell which service, nothing that lets one post."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}/…"


class _Retryable(Exception):
    pass


class WebhookAlertSink:
    """Posts alerts to a Slack-compatible incoming webhook."""

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 3, backoff_s: float = 0.5,
                 username: str = "tradecore", source: str = ""):
        if not url.startswith(("https://", "http://")):
            raise ValueError("the alert webhook URL must be an http(s) URL")
        self._url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.username = username
        self.source = source

    def __repr__(self) -> str:
        return f"WebhookAlertSink({redact_url(self._url)})"

    def payload(self, severity: str, title: str, details: str) -> dict:
        """The JSON body: ``text`` for every client, an attachment with colour and fields for Slack."""
        icon = ICONS.get(severity, ":information_source:")
        source = f" ({self.source})" if self.source else ""
        return {
            "username": self.username,
            "text": f"{icon} {title}{source}\n{details}",
            "attachments": [{
                "color": COLORS.get(severity, "#999999"),
                "title": title,
                "text": details,
                "fields": [{"title": "Severity", "value": severity, "short": True}]
                + ([{"title": "Source", "value": self.source, "short": True}] if self.source else []),
            }],
        }

    def alert(self, severity: str, title: str, details: str) -> None:
        """Send one alert; raises AlertDeliveryError when the webhook keeps refusing it."""
        body = json.dumps(self.payload(severity, title, details)).encode("utf-8")
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=30),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=False,
        )
        try:
            retrying(self._post, body)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise AlertDeliveryError(
                f"alert webhook {redact_url(self._url)} failed after {self.retries + 1} attempt(s): {cause}"
            ) from None

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "tradecore"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}") from None
            raise AlertDeliveryError(
                f"alert webhook {redact_url(self._url)} refused the alert: HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retryable(f"{type(exc).__name__}: {reason}") from None


class LogAlertSink:
    """Writes alerts to the log (always on, so an alert is never only in a chat channel)."""

    def __init__(self, logger: logging.Logger | None = None):
        self.logger = logger or log

    def alert(self, severity: str, title: str, details: str) -> None:
        level = logging.INFO if severity == "OK" else logging.WARNING if severity in ("P2", "P3") else logging.ERROR
        self.logger.log(level, "ALERT %s: %s | %s", severity, title, details.replace("\n", " | "))


class FanOutAlertSink:
    """Delivers to every sink; raises (after trying all) if any failed, so the watch retries later.

    A sink that already succeeded is not repeated on the retry: only the failed ones are.
    """

    def __init__(self, sinks: Sequence[object]):
        self.sinks = list(sinks)
        self._owed: dict[tuple[str, str, str], list[object]] = {}

    def alert(self, severity: str, title: str, details: str) -> None:
        key = (severity, title, details)
        targets = self._owed.pop(key, self.sinks)
        failed = []
        errors = []
        for sink in targets:
            try:
                sink.alert(severity, title, details)
            except Exception as exc:  # noqa: BLE001 - try the others first
                failed.append(sink)
                errors.append(str(exc))
        if failed:
            self._owed[key] = failed
            raise AlertDeliveryError("; ".join(errors))


def webhook_sink_from(settings, source: str = "") -> WebhookAlertSink | None:
    """The webhook of ``system.alert_webhook_url`` with the ``[monitoring]`` timeout and retries (None: not set)."""
    url = settings.system.alert_webhook_url
    if url is None:
        return None
    m = settings.monitoring
    return WebhookAlertSink(url.get_secret_value(), timeout=m.webhook_timeout_seconds, retries=m.webhook_retries,
                            source=source)


def alert_sink_from(settings, source: str = "") -> FanOutAlertSink:
    """The health watch's sink: the log always, plus the webhook when ``system.alert_webhook_url`` is set."""
    webhook = webhook_sink_from(settings, source)
    return FanOutAlertSink([LogAlertSink(), *([webhook] if webhook is not None else [])])
