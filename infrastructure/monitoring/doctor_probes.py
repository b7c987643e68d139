"""The probes `tradecore doctor` runs: each looks at one outside thing and returns a ``Check``.

Nothing here changes anything: the store is only read (a missing SQLite file is not created),
the read model is opened read-only, the venue and the LLM get one read each, and the webhook
and SMTP server are only connected to, unless ``send_test`` asks for a test message.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import stat
import urllib.request
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from application.operations.doctor import Check, failed, ok, warn
from infrastructure.monitoring.alert_sinks import redact_url

SKEW_WARN_S = 2.0
SKEW_FAIL_S = 30.0  # Coinbase refuses JWTs more than ~30 s off


def store_checks(settings: Any, open_store) -> list[Check]:
    """Reachable, hash chain intact up to its head, writable."""
    from infrastructure.eventstore.chain import verify_chain
    from infrastructure.eventstore.store import parse_store_url

    location = parse_store_url(settings.eventstore.url)
    where = location.redacted()
    if location.backend == "sqlite" and not Path(location.sqlite_path).exists():
        return [warn("store", f"{where}: no file yet", "it is created by the first command that writes "
                     "(`tradecore run`, `tradecore data fetch`); check EVENTSTORE__URL if you expected one")]
    try:
        trading = open_store(settings.eventstore.url)
    except Exception as exc:  # noqa: BLE001 - unreachable is the finding
        return [failed("store", f"{where}: {exc}", "check EVENTSTORE__URL, that the server runs and the credentials")]
    try:
        report = verify_chain(trading.recorder)
        head = trading.max_notification_id()
        if report.ok:
            chain = ok("store.chain", f"{report.checked} event(s) intact up to id {report.last_id}, head {report.head[:12]}")
        else:
            chain = failed("store.chain", f"first bad notification id {report.bad_notification_id}: {report.problem}",
                           "stop writers; `tradecore audit verify`; restore from the last verified backup")
        reach = ok("store", f"{where} reachable, last id {head}")
        return [reach, chain, _store_writable(location, trading)]
    finally:
        trading.close()


def _store_writable(location, trading) -> Check:
    if location.backend == "sqlite":
        path = Path(location.sqlite_path)
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            return ok("store.write", f"{path} and its folder are writable")
        return failed("store.write", f"{path} is not writable by uid {os.getuid()}",
                      "give this user write permission on the file and its folder (SQLite writes a journal beside it)")
    import psycopg

    with psycopg.connect(host=location.host, port=location.port, user=location.user, password=location.password,
                         dbname=location.dbname, connect_timeout=5) as con:
        standby = con.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        schema = location.schema or con.execute("SELECT current_schema()").fetchone()[0]
        can_create = con.execute("SELECT has_schema_privilege(current_user, %s, 'USAGE')", (schema,)).fetchone()[0]
    if standby:
        return failed("store.write", "the server is a read-only standby", "point EVENTSTORE__URL at the primary")
    if not can_create:
        return failed("store.write", "the role lacks privileges on the schema", "GRANT USAGE (and INSERT) to the role")
    return ok("store.write", f"primary server, role {location.user} may use schema {schema}")


def readmodel_check(settings: Any, head: int | None) -> Check:
    """How far the DuckDB read model trails the log (read-only; a file a process owns is read through it)."""
    import duckdb

    from projections.engine.runner import TRACKING, ReadModelLocked, open_readmodel

    path = Path(settings.readmodel.path)
    if not path.exists():
        return warn("readmodel", f"{path}: no file yet", "`tradecore serve` or `tradecore run` builds it; "
                    "`tradecore project` catches it up once")
    try:
        con = open_readmodel(path, read_only=True)
    except ReadModelLocked:
        return ok("readmodel", f"{path} is owned by a running process", "")
    except duckdb.Error as exc:
        return failed("readmodel", f"{path}: {exc}", "rebuild it: `tradecore project --rebuild`")
    try:
        rows = con.execute(f"SELECT min(last_notification_id) FROM {TRACKING}").fetchone()
    except duckdb.Error:
        rows = (0,)
    finally:
        con.close()
    position = int(rows[0] or 0)
    if head is None:
        return ok("readmodel", f"at notification id {position}")
    lag = max(head - position, 0)
    figure = f"{lag} event(s) behind the log (at {position}, log head {head})"
    if lag == 0:
        return ok("readmodel", figure)
    return warn("readmodel", figure, "no projector is following the log: start `tradecore serve` or run "
                "`tradecore project`")


def coinbase_checks(settings: Any, client_for) -> list[Check]:
    """The public time endpoint (reachable, clock skew) and, with keys, one authenticated read.

    ``client_for(authenticated)`` builds the same Coinbase client the bot uses (the composition root's).
    """
    try:
        venue_time = client_for(False).server_time()
    except Exception as exc:  # noqa: BLE001 - an unreachable venue is the finding
        return [failed("coinbase", f"{settings.exchange.base_url}: {exc}",
                       "check the network, EXCHANGE__BASE_URL and https://status.coinbase.com")]
    skew = (datetime.now(timezone.utc) - venue_time).total_seconds()
    figure = f"clock skew {skew:+.1f} s against {settings.exchange.base_url}"
    if abs(skew) >= SKEW_FAIL_S:
        checks = [failed("coinbase.clock", figure, "sync the clock (chrony/ntpd): the venue refuses signed "
                         "requests this far off")]
    elif abs(skew) >= SKEW_WARN_S:
        checks = [warn("coinbase.clock", figure, "sync the clock (chrony/ntpd) before trading")]
    else:
        checks = [ok("coinbase.clock", figure)]
    x = settings.exchange
    if x.api_key is None or x.api_secret is None:
        if settings.trading.mode == "live":
            checks.append(warn("coinbase.auth", "no API keys (live trading needs them)",
                               "set EXCHANGE__API_KEY and EXCHANGE__API_SECRET"))
        else:
            checks.append(ok("coinbase.auth", f"no API keys (not needed in {settings.trading.mode} mode)"))
        return checks
    try:
        accounts = client_for(True).accounts()
    except Exception as exc:  # noqa: BLE001
        checks.append(failed("coinbase.auth", f"authenticated read refused: {exc}",
                             "check the CDP key name and private key, their permissions (view, trade) and IP allow-list"))
        return checks
    checks.append(ok("coinbase.auth", f"authenticated: {len(accounts)} account(s) readable"))
    return checks


def llm_check(settings: Any) -> Check:
    """The model list, or a one-token completion where the server has no list, against LLM__BASE_URL."""
    import openai

    llm = settings.llm
    if settings.trading.strategy != "llm" and llm.api_key is None and not llm.base_url:
        return ok("llm", "not used (trading.strategy = rules, no LLM configured)")
    if llm.api_key is None and not llm.base_url:
        return failed("llm", "no LLM__API_KEY", "set LLM__API_KEY (or LLM__BASE_URL for a local server)")
    where = llm.base_url or "https://api.openai.com/v1"
    client = openai.OpenAI(api_key=llm.api_key.get_secret_value() if llm.api_key else "not-needed",
                           base_url=llm.base_url, max_retries=0, timeout=min(llm.request_timeout, 15))
    try:
        try:
            models = [m.id for m in client.models.list()]
        except (openai.NotFoundError, openai.APIStatusError) as exc:
            if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
                raise
            client.chat.completions.create(model=llm.model, max_tokens=1,
                                           messages=[{"role": "user", "content": "ping"}])
            return ok("llm", f"{where}: a one-token completion of {llm.model} answered")
        if models and llm.model not in models:
            return warn("llm", f"{where}: {len(models)} model(s), not {llm.model}", "check LLM__MODEL")
        return ok("llm", f"{where}: {llm.model} listed" if models else f"{where}: reachable")
    except openai.AuthenticationError:
        return failed("llm", f"{where}: the API key was refused", "check LLM__API_KEY")
    except openai.APIConnectionError as exc:
        return failed("llm", f"{where}: no answer ({type(exc.__cause__ or exc).__name__})",
                      "check LLM__BASE_URL and the network")
    except openai.APIError as exc:
        return failed("llm", f"{where}: {type(exc).__name__}", "check the provider's status, quota and LLM__MODEL")
    finally:
        client.close()


def webhook_check(settings: Any, send_test: bool) -> Check:
    """The alert webhook's host accepts a connection (and, with --send-test, a test message)."""
    url = settings.system.alert_webhook_url
    if url is None:
        return warn("webhook", "no SYSTEM__ALERT_WEBHOOK_URL: alerts only reach the log",
                    "set SYSTEM__ALERT_WEBHOOK_URL to a Slack-compatible incoming webhook")
    secret = url.get_secret_value()
    shown = redact_url(secret)
    if send_test:
        body = json.dumps({"username": "tradecore", "text": ":white_check_mark: tradecore doctor: test message"})
        request = urllib.request.Request(secret, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "tradecore"})
        try:
            with urllib.request.urlopen(request, timeout=settings.monitoring.webhook_timeout_seconds) as answer:  # noqa: S310
                return ok("webhook", f"{shown}: test message accepted (HTTP {answer.status})")
        except Exception as exc:  # noqa: BLE001
            return failed("webhook", f"{shown}: test message refused: {getattr(exc, 'code', '') or type(exc).__name__}",
                          "check the webhook URL (it may have been revoked)")
    parts = urlsplit(secret)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=settings.monitoring.webhook_timeout_seconds).close()
    except OSError as exc:
        return failed("webhook", f"{shown}: cannot connect ({exc})", "check the network and the webhook URL")
    return ok("webhook", f"{shown}: reachable (nothing sent; --send-test posts a test message)")


def smtp_check(settings: Any, send_test: bool) -> Check:
    """The SMTP server: connect, EHLO, STARTTLS and login as configured; a message only with --send-test."""
    a = settings.alerting
    if not a.smtp_host:
        return ok("smtp", "no email channel configured (ALERTING__SMTP_HOST unset)")
    where = f"{a.smtp_host}:{a.smtp_port}"
    try:
        with smtplib.SMTP(a.smtp_host, a.smtp_port, timeout=a.smtp_timeout_seconds) as smtp:
            smtp.ehlo()
            if a.smtp_starttls:
                if not smtp.has_extn("starttls"):
                    return failed("smtp", f"{where} offers no STARTTLS",
                                  "use the submission port (587) or set ALERTING__SMTP_STARTTLS=false on a trusted network")
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if a.smtp_user:
                smtp.login(a.smtp_user, a.smtp_password.get_secret_value() if a.smtp_password else "")
            if send_test:
                message = EmailMessage()
                message["Subject"], message["From"], message["To"] = "tradecore doctor: test", a.email_from, ", ".join(a.email_to)
                message.set_content("A test message from `tradecore doctor --send-test`.")
                smtp.send_message(message)
                return ok("smtp", f"{where}: test message sent to {len(a.email_to)} recipient(s)")
    except smtplib.SMTPAuthenticationError:
        return failed("smtp", f"{where}: login refused", "check ALERTING__SMTP_USER and ALERTING__SMTP_PASSWORD")
    except (OSError, smtplib.SMTPException) as exc:
        return failed("smtp", f"{where}: {type(exc).__name__}: {exc}", "check ALERTING__SMTP_HOST/PORT and the network")
    tls = ", STARTTLS" if a.smtp_starttls else ""
    login = ", login ok" if a.smtp_user else ""
    return ok("smtp", f"{where}: reachable{tls}{login} (nothing sent; --send-test sends a test message)")


def disk_check(settings: Any, data_path: Path) -> Check:
    """Free space where the store (SQLite) or the read model lives, against the monitoring thresholds."""
    import psutil

    path = Path(data_path)
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = psutil.disk_usage(str(path))
    figure = f"{usage.percent:.1f}% used, {usage.free / 2**30:.1f} GiB free on {path}"
    m = settings.monitoring
    if usage.percent > float(m.disk_alert_pct):
        return failed("disk", figure, "free space now: a full disk stops the event store (move old backups, rotate logs)")
    if usage.percent > float(m.disk_target_pct):
        return warn("disk", figure, "plan to free space (old backups, logs)")
    return ok("disk", figure)


def file_mode_checks(paths: dict[str, Path]) -> list[Check]:
    """Files that hold the log, events or secrets are readable by their owner only."""
    checks = []
    for label, path in paths.items():
        if path is None or not Path(path).exists():
            continue
        mode = stat.S_IMODE(Path(path).stat().st_mode)
        if mode & 0o077:
            checks.append(warn(f"mode.{label}", f"{path} is {oct(mode)} (others can read it)", f"chmod 600 {path}"))
        else:
            checks.append(ok(f"mode.{label}", f"{path} is {oct(mode)}"))
    return checks
