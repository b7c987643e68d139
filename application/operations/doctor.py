"""`tradecore doctor`: is everything the bot needs reachable and sane, before it starts?

Each check answers one question an operator asks every morning (the operations manual's
"Bot won't start" list: configuration, store, read model, the venue and its clock, the LLM,
the alert channels, disk, file modes) with a status, the figure it measured and what to do.
The probes themselves (network, files, databases) are adapters in
``infrastructure/monitoring/doctor_probes.py``; this module runs them, so that one probe that
raises is one failed line, never a traceback, and decides the exit code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal

log = logging.getLogger("tradecore.doctor")

Status = Literal["ok", "warn", "fail"]
STATUS_ORDER = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it stands, the figure, what to do about it."""

    name: str
    status: Status
    figure: str
    action: str = ""
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def ok(name: str, figure: str) -> Check:
    return Check(name, "ok", figure)


def warn(name: str, figure: str, action: str) -> Check:
    return Check(name, "warn", figure, action)


def failed(name: str, figure: str, action: str) -> Check:
    return Check(name, "fail", figure, action)


Probe = Callable[[], "Check | list[Check]"]


@dataclass(frozen=True)
class DoctorReport:
    """Every check's line; ``exit_code`` 0 when none failed, 1 otherwise."""

    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        worst = max((STATUS_ORDER[c.status] for c in self.checks), default=0)
        return next(s for s, rank in STATUS_ORDER.items() if rank == worst)  # type: ignore[return-value]

    @property
    def exit_code(self) -> int:
        return 1 if any(c.status == "fail" for c in self.checks) else 0

    def as_dict(self) -> dict:
        return {"status": self.status, "checks": [c.as_dict() for c in self.checks]}


def examine(probes: Iterable[tuple[str, Probe]]) -> DoctorReport:
    """Run each named probe in turn; a probe that raises becomes a failed check naming the error."""
    checks: list[Check] = []
    for name, probe in probes:
        started = time.perf_counter()
        try:
            outcome = probe()
        except Exception as exc:  # noqa: BLE001 - a broken probe is a failed check, not a crash
            log.warning("doctor check %s raised: %s", name, exc, exc_info=True)
            outcome = failed(name, f"{type(exc).__name__}: {exc}", "see the log for the traceback")
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        for check in outcome if isinstance(outcome, list) else [outcome]:
            checks.append(Check(check.name, check.status, check.figure, check.action, elapsed))
            level = logging.DEBUG if check.status == "ok" else logging.INFO  # the report itself is the output
            log.log(level, "doctor %s: %s (%s)", check.name, check.status, check.figure)
    return DoctorReport(tuple(checks))
