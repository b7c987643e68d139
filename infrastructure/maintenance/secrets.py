"""Secrets where they must never be: logs, exports, backups and event payloads.

Looks for the value of every configured secret (named by its setting, never shown) and for
text shaped like a credential: a PEM private key, a JWT, an ``sk-``/``xox`` key, a Slack hook,
a password inside a URL. (Deliberately narrower than the log masker's shapes: payloads hold
free text such as an LLM's rationale, where "token ..." is an ordinary word.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from infrastructure.maintenance.findings import Finding, finding, ok

SHAPES = (
    ("a PEM private key", re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a JWT", re.compile(rb"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("an API key (sk-/xox)", re.compile(rb"\b(?:sk|rk|xox[abpr])-[A-Za-z0-9_\-]{16,}")),
    ("a Slack webhook", re.compile(rb"hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+")),
    ("a password in a URL", re.compile(rb"://[^:/@\s\"']+:(?!\*\*\*\*@)[^@\s/\"']{3,}@")),
)
MIN_SECRET = 8  # shorter configured values would match ordinary words


def configured_secrets(settings: Any) -> list[tuple[str, bytes]]:
    """(setting path, value) of every secret in the settings, at least MIN_SECRET characters long."""
    out: list[tuple[str, bytes]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            if len(text) >= MIN_SECRET:
                out.append((path, text.encode()))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{path}.{name}" if path else name)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(settings, "")
    return out


def _what(chunk: bytes, secrets: list[tuple[str, bytes]]) -> list[str]:
    found = [f"the value of {path}" for path, value in secrets if value in chunk]
    found += [name for name, pattern in SHAPES if pattern.search(chunk)]
    return found


def scan(sources: Iterable[tuple[str, Iterator[tuple[str, bytes]]]], secrets: list[tuple[str, bytes]]) -> list[Finding]:
    """One finding per source and kind of secret (with the first place it occurs), or one ok."""
    out: list[Finding] = []
    scanned = []
    for label, chunks in sources:
        scanned.append(label)
        first: dict[str, str] = {}
        count: dict[str, int] = {}
        for where, chunk in chunks:
            for what in _what(chunk, secrets):
                first.setdefault(what, where)
                count[what] = count.get(what, 0) + 1
        for what, where in first.items():
            out.append(finding(f"secrets.{label}", f"{what} in {where} ({count[what]} place(s) in {label})",
                               "rotate that credential, then remove or redact the copy (the event log itself "
                               "cannot be edited: rotate, and record why)"))
    if not out:
        out.append(ok("secrets", f"no configured secret or credential-shaped text in {', '.join(scanned) or 'nothing'}"))
    return out


def text_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file:line, line) of a text file (gzip read as such)."""
    import gzip

    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, 1):
            yield f"{path}:{number}", line


def parquet_values(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file: notification N, payload) of a Parquet export or backup (either form)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = "payload" if "payload" in table.column_names else "state"
    for nid, value in zip(table.column("notification_id").to_pylist(), table.column(column).to_pylist()):
        if value is not None:
            yield f"{path}: notification {nid}", value if isinstance(value, bytes) else value.encode()


def file_chunks(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.suffix == ".parquet":
        yield from parquet_values(path)
    elif path.is_file():
        yield from text_lines(path)


def log_chunks(log_file: Path) -> Iterator[tuple[str, bytes]]:
    """The log file, then its rotations (``NAME.*``) sorted, line by line; nothing when the log file is absent."""
    if not log_file.exists():
        return
    for path in [log_file, *sorted(log_file.parent.glob(log_file.name + ".*"))]:
        yield from file_chunks(path)


def backup_chunks(root: Path) -> Iterator[tuple[str, bytes]]:
    """The events files (Parquet or JSON lines) of the archives in a local destination; partial ones are skipped."""
    events_files = sorted(p for p in root.glob("*/events.*") if not p.parent.name.startswith("."))
    for path in events_files:
        if path.suffix == ".parquet" or path.name.endswith((".jsonl", ".jsonl.gz")):
            yield from file_chunks(path)


def payloads(store: Any, page: int = 20_000) -> Iterator[tuple[str, bytes]]:
    """(notification N, stored JSON) of every event in the log."""
    after = 0
    while rows := store.recorder.select_log_rows(after, page, ()):
        for nid, _topic, state in rows:
            yield f"notification {nid}", bytes(state)
        after = rows[-1][0]
