"""What a maintenance check found: one line each, with what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    ``status``: ``ok``; ``finding`` (something to act on: exit 1); ``fixed`` (``--fix`` repaired it);
    ``skipped`` (could not be checked here, and why).
    """

    check: str
    status: str
    detail: str
    action: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def finding(check: str, detail: str, action: str) -> Finding:
    return Finding(check, "finding", detail, action)


def fixed(check: str, detail: str) -> Finding:
    return Finding(check, "fixed", detail)


def skipped(check: str, detail: str) -> Finding:
    return Finding(check, "skipped", detail)
