"""The process log: stdlib ``logging`` configured once at start-up, as JSON lines with secrets masked.

One line per record: ``time`` (UTC, ISO-8601), ``level``, ``logger``, ``message`` and, where
known, ``run_id``, ``product`` and ``correlation_id``; structured figures a caller passes as
``extra={"fields": {...}}`` (a venue call's endpoint and latency, say) join the line.

Long-running processes (``tradecore run``, ``tradecore serve``) write ``system.log_file``
(default ``var/logs/tradecore.log``); short commands write stderr. The file is created with
mode 0600 (it names orders, balances and hosts), rotated when it reaches ``system.log_max_mb``
and rotated files older than ``system.log_retention_days`` are deleted. Two processes may
append to one file: a process that finds the file rotated under it reopens the new one.

``SecretMasker`` masks every configured secret (API keys, the webhook URL, SMTP password, API
tokens) and anything shaped like one (bearer tokens, JWTs, ``sk-`` keys, PEM private keys,
``api_key=...``) in messages and tracebacks, before a record reaches any handler.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

DEFAULT_LOG_FILE = Path("var/logs/tradecore.log")
STDERR = "-"
MASK = "****"
_MARK = "_tradecore_handler"  # our handlers carry this attribute, so reconfiguring replaces only them
NOISY_LIBRARIES = ("httpx", "httpcore", "urllib3", "websockets", "openai", "asyncio", "uvicorn.access", "aiosmtpd",
                   "mail.log")

# --- what is known about the record: run, product, correlation ------------------------------------

_bound: dict[str, str] = {}
_correlation: ContextVar[str | None] = ContextVar("tradecore_log_correlation", default=None)


def bind(**fields: object) -> None:
    """Process-wide fields on every line from now on (``run_id``, ``product``); None removes one."""
    for key, value in fields.items():
        if value is None:
            _bound.pop(key, None)
        else:
            _bound[key] = str(value)


@contextmanager
def correlated(correlation_id: object) -> Iterator[None]:
    """Lines logged inside the block (in this thread or task) carry ``correlation_id``."""
    token = _correlation.set(None if correlation_id is None else str(correlation_id))
    try:
        yield
    finally:
        _correlation.reset(token)


# --- masking ----------------------------------------------------------------------------------------

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
     "-----PRIVATE KEY " + MASK + "-----"),
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"), r"\1\2" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"), MASK),  # a JWT
    (re.compile(r"\b(sk|pk|rk|xox[abpr])-[A-Za-z0-9_\-]{8,}"), r"\1-" + MASK),
    (re.compile(r"organizations/[^/\s\"']+/apiKeys/[A-Za-z0-9-]+"), "organizations/" + MASK + "/apiKeys/" + MASK),
    (re.compile(r"(?i)\b((?:x-)?api[_-]?(?:key|secret)|secret|password|passwd|access[_-]?token|auth[_-]?token)"
                r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"',&;]{4,})"), r"\1\2" + MASK),
    (re.compile(r"(://[^:/@\s]+:)[^@\s/]+@"), r"\1" + MASK + "@"),  # a password inside a URL
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/]+"), r"\1" + MASK),
)


class SecretMasker(logging.Filter):
    """Replaces configured secrets and secret-shaped text in a record's message and traceback.

    Attached to every handler we install, so a record from any logger (ours, a library's)
    is masked before it is written. Secrets shorter than 4 characters are not masked by value
    (they would mask ordinary words); the shapes still apply.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also mask these values (and each long line of a multi-line secret such as a PEM key)."""
        found = set(self.secrets)
        for secret in secrets:
            if not secret or len(secret) < 4:
                continue
            found.add(secret)
            found.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 16)
        self.secrets = sorted(found, key=len, reverse=True)  # longest first: a secret containing another

    def mask(self, text: str) -> str:
        """``text`` with every secret and secret-shaped substring replaced by ``****``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string still gets logged, masked
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
            record.exc_info = None  # the masked text is what is written
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self.mask(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True


def configured_secrets(settings: Any) -> list[str]:
    """Every secret value held anywhere in the settings (SecretStr fields, nested lists included)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(settings)
    return out


# --- the line format --------------------------------------------------------------------------------


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, run/product/correlation, fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_bound)
        correlation = getattr(record, "correlation_id", None) or _correlation.get()
        if correlation:
            line["correlation_id"] = str(correlation)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


# --- the file ---------------------------------------------------------------------------------------


class RetainedLogFile(logging.handlers.RotatingFileHandler):
    """A 0600 log file rotated by size into ``NAME.YYYYmmddTHHMMSSffffffZ``, pruned by age.

    A process that finds its file renamed by another process's rotation reopens the path.
    """

    def __init__(self, path: Path, *, max_bytes: int, retention_days: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.retention_days = retention_days
        self._lock_rollover = threading.Lock()
        super().__init__(str(self.path), maxBytes=max_bytes, backupCount=0, encoding="utf-8", delay=False)
        self.prune()

    def _open(self):  # noqa: ANN202 - the stdlib's signature
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)  # a file left by an older version keeps no wider mode
        return os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is not None and _moved(self.baseFilename, self.stream):
            self.stream.close()
            self.stream = self._open()
        super().emit(record)

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - the stdlib's name
        if self.maxBytes <= 0 or self.stream is None:
            return False
        return self.stream.tell() >= self.maxBytes

    def doRollover(self) -> None:  # noqa: N802 - the stdlib's name
        if self.stream:
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        try:
            if self.path.exists() and self.path.stat().st_size >= self.maxBytes:
                os.replace(self.path, target)  # another process may have rotated it already
        except OSError:
            pass
        self.stream = self._open()
        self.prune()

    def prune(self) -> list[Path]:
        """Delete rotated files older than the retention; returns what was deleted."""
        cutoff = time.time() - self.retention_days * 86400
        deleted = []
        for old in rotated_files(self.path):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
                    deleted.append(old)
            except OSError:
                continue
        return deleted


def _moved(path: str, stream) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(stream.fileno()).st_ino
    except OSError:
        return True


def rotated_files(path: Path) -> list[Path]:
    """The rotated siblings of a log file (``NAME.<stamp>``), oldest first."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f"{path.name}.*") if p.is_file())


def log_files(path: Path) -> list[Path]:
    """Rotated files oldest first, then the current file: everything a log analysis reads."""
    path = Path(path)
    return rotated_files(path) + ([path] if path.is_file() else [])


def analysed_log_file(settings: Any) -> Path:
    """The file a log analysis and the secret scan read: the configured file, else the default one (also when
    this process logs to stderr: the long-running ones wrote there)."""
    configured = getattr(settings.system, "log_file", None)
    return Path(configured) if configured and str(configured) != STDERR else DEFAULT_LOG_FILE


# --- start-up -----------------------------------------------------------------------------------------


def log_destination(settings: Any, long_running: bool) -> Path | None:
    """Where this process logs: the configured file, else the default file (long-running) or stderr (None)."""
    configured = getattr(settings.system, "log_file", None)
    if configured is not None:
        return None if str(configured) == STDERR else Path(configured)
    return DEFAULT_LOG_FILE if long_running else None


def configure_logging(settings: Any, *, long_running: bool = False, destination: Path | str | None = "auto",
                      stream: typing.TextIO | None = None) -> SecretMasker:
    """Install the JSON-lines handler (file or stderr) on the root logger, replacing any we installed.

    Called once at start-up by the CLI; ``run`` and ``serve`` call it again as long-running
    processes once their settings are known. Returns the masker, so a caller can add secrets
    learnt later.
    """
    system = settings.system
    level = logging.getLevelName(system.log_level)
    target = log_destination(settings, long_running) if destination == "auto" else destination
    masker = SecretMasker(configured_secrets(settings))
    problem = None
    if target is None or str(target) == STDERR:
        handler: logging.Handler = logging.StreamHandler(stream or sys.stderr)
    else:
        try:
            handler = RetainedLogFile(Path(target), max_bytes=int(system.log_max_mb * 2**20),
                                      retention_days=system.log_retention_days)
        except OSError as exc:  # an unwritable log must not stop the bot: say so on stderr and log there
            handler, problem = logging.StreamHandler(stream or sys.stderr), f"cannot write the log file {target}: {exc}"
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(masker)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    quiet = max(level, logging.WARNING)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    if problem:
        logging.getLogger("tradecore.logs").error("%s; logging to stderr instead (check SYSTEM__LOG_FILE)", problem)
    return masker


def current_log_file() -> Path | None:
    """The file our handler writes, if it writes one (for the start-up line and `doctor`)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, _MARK, False) and isinstance(handler, RetainedLogFile):
            return handler.path
    return None


def configure_from_environment() -> None:
    """Best effort for short commands before their settings load: the environment's level, stderr.

    An invalid configuration is reported by the command itself; here it falls back to the defaults.
    """
    from infrastructure.settings.loading import ConfigurationError, load_settings

    try:
        settings = load_settings()
    except ConfigurationError:
        from infrastructure.settings.loading import Settings

        settings = Settings.model_construct()
    configure_logging(settings, long_running=False)
