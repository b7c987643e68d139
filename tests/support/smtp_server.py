"""A loopback SMTP server (aiosmtpd) with STARTTLS and login, recording what it receives.

Its certificate is the Coinbase stand-in's kind (self-signed for 127.0.0.1); a client trusts it
through ``SSL_CERT_FILE``, as tradecore's STARTTLS uses the default verified context.
"""

from __future__ import annotations

import socket
import ssl
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.coinbase_standin import make_certificate


class _Recorder:
    def __init__(self) -> None:
        self.messages: list = []
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's name
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    """``start()`` then point ALERTING__SMTP_* at ``host``/``port``; ``messages`` holds what arrived."""

    def __init__(self, directory: Path, user: str = "bot", password: str = "smtp-secret-pw"):
        own = Path(directory) / "smtp"  # its own folder: the Coinbase stand-in's files have the same names
        own.mkdir(parents=True, exist_ok=True)
        self.cert_file, key_file = make_certificate(own)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self.user, self.password = user, password
        self.recorder = _Recorder()
        self.logins: list[str] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.host = "127.0.0.1"
        self.controller = Controller(self.recorder, hostname=self.host, port=self.port, tls_context=context,
                                     require_starttls=True, authenticator=self._authenticate, auth_require_tls=True,
                                     auth_exclude_mechanism=["LOGIN"])  # smtplib falls back to LOGIN after a
        # refused PLAIN, and aiosmtpd then stalls the conversation: PLAIN alone gives the plain 535

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user \
            and auth_data.password.decode() == self.password
        self.logins.append("ok" if ok else "refused")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 or 535 itself

    @property
    def messages(self) -> list:
        return self.recorder.messages

    def env(self, **extra: str) -> dict[str, str]:
        """Settings that send alert email here (and trust its certificate)."""
        return {"ALERTING__SMTP_HOST": self.host, "ALERTING__SMTP_PORT": str(self.port),
                "ALERTING__SMTP_USER": self.user, "ALERTING__SMTP_PASSWORD": self.password,
                "ALERTING__EMAIL_FROM": "bot@example.com", "ALERTING__EMAIL_TO": '["ops@example.com"]',
                "SSL_CERT_FILE": str(self.cert_file), **extra}

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
