"""`tradecore doctor`: is everything the bot needs reachable and sane, before it starts?

Each check answers one question an operator asks every morning (the operations manual's
"Bot won't start" list: configuration, store, read model, the venue and its clock, the LLM,
the alert channels, disk, file modes) with a status, the figure it measured and what to do.
The probes themselves (network, files, databases) are adapters behind the ``DoctorProbes`` port
(``infrastructure/monitoring/doctor_probes.py``, handed in by api/bootstrap.py); this module decides
which run and in what order (``checkup``), runs them so that one probe that raises is one failed line,
never a traceback, and decides the exit code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

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


class DoctorProbes(Protocol):
    """The port: each probe looks at one outside thing and answers with checks; none changes anything."""

    def store_checks(self, settings: Any, open_store: Callable[[str], Any]) -> list[Check]:
        """Reachable, hash chain intact up to its head (``last id N`` in the store's figure), writable."""

    def readmodel_check(self, settings: Any, head: int | None) -> Check:
        """The read model opens read-only and how far behind the store's head it is."""

    def coinbase_checks(self, settings: Any, client_for: Callable[[bool], Any]) -> list[Check]:
        """The venue answers, its clock's skew, and the keys (``client_for(authenticated)``)."""

    def llm_check(self, settings: Any) -> Check: ...

    def webhook_check(self, settings: Any, send_test: bool) -> Check: ...

    def smtp_check(self, settings: Any, send_test: bool) -> Check: ...

    def disk_check(self, settings: Any, data_path: Path) -> Check: ...

    def file_mode_checks(self, paths: dict[str, Any]) -> list[Check]: ...


def checkup(probes: DoctorProbes, settings: Any, *, open_store: Callable[[str], Any], client_for: Callable[[bool], Any],
            data_path: Callable[[Any], Path], log_file: Path | None, config_file: Path | None,
            send_test: bool = False) -> DoctorReport:
    """Every check the bot needs before it starts, in the order an operator reads them: configuration, store
    (the read model is measured against its head), venue, LLM, alert channels, disk (``data_path(settings)``: the
    folder whose disk is watched), file modes."""
    head: dict[str, int | None] = {"id": None}

    def store_probe() -> list[Check]:
        checks = probes.store_checks(settings, open_store)
        head["id"] = store_head(checks)
        return checks

    sqlite = settings.eventstore.sqlite_path
    return examine([
        ("config", lambda: Check("config", "ok", "configuration valid")),
        ("store", store_probe),
        ("readmodel", lambda: probes.readmodel_check(settings, head["id"])),
        ("coinbase", lambda: probes.coinbase_checks(settings, client_for)),
        ("llm", lambda: probes.llm_check(settings)),
        ("webhook", lambda: probes.webhook_check(settings, send_test)),
        ("smtp", lambda: probes.smtp_check(settings, send_test)),
        ("disk", lambda: probes.disk_check(settings, data_path(settings))),
        ("modes", lambda: probes.file_mode_checks({"store": sqlite, "log": log_file, "config": config_file})),
    ])


def store_head(checks: Iterable[Check]) -> int | None:
    """The store's last notification id, from its ok check's figure (None when it was not reached)."""
    for check in checks:
        if check.name == "store" and check.status == "ok" and "last id " in check.figure:
            return int(check.figure.rsplit("last id ", 1)[1])
    return None
