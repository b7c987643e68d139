"""The adapters api/bootstrap.py hands in fill their ports: every method a port names exists on its adapter and
accepts the port's arguments (positional ones by position, keyword-only ones by name); every function of a
port record is filled with something callable. A renamed or reshaped adapter function fails here, not in the field."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from api import bootstrap
from application.operations.anchors import Notary
from application.operations.backups import BackupShelf
from application.operations.doctor import DoctorProbes
from application.operations.maintenance import UpkeepKit
from application.ports import Configuration, ProcessLog

MODULE_PORTS = [(Configuration, bootstrap.configuration), (ProcessLog, bootstrap.process_log),
                (DoctorProbes, bootstrap.doctor_probes), (UpkeepKit, bootstrap.upkeep_kit)]


def port_methods(port: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(port).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def unfilled(port: type, adapter: object) -> list[str]:
    """What of ``port`` the adapter lacks or cannot be called with."""
    problems = []
    for name, wanted in port_methods(port).items():
        member = getattr(adapter, name, None)
        if not callable(member):
            problems.append(f"{name}: missing")
            continue
        given = inspect.signature(member)
        positional = [p for p in wanted.parameters.values() if p.name != "self"
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        keywords = {p.name: None for p in wanted.parameters.values() if p.kind is p.KEYWORD_ONLY}
        try:
            given.bind(*[None] * len(positional), **keywords)
        except TypeError as exc:
            problems.append(f"{name}{wanted}: the adapter's {name}{given} does not take it ({exc})")
    return problems


@pytest.mark.parametrize(("port", "build"), MODULE_PORTS, ids=[p.__name__ for p, _ in MODULE_PORTS])
def test_the_adapter_the_root_hands_in_fills_its_port(port, build):
    assert port_methods(port), f"{port.__name__} names no method"
    assert unfilled(port, build()) == []


@pytest.mark.parametrize(("record", "build"), [(BackupShelf, bootstrap.backup_shelf), (Notary, bootstrap.notary)],
                         ids=["BackupShelf", "Notary"])
def test_every_function_of_a_port_record_is_filled(record, build):
    filled = build()
    assert isinstance(filled, record)
    empty = [f.name for f in fields(record) if f.name != "kinds" and not callable(getattr(filled, f.name))]
    assert empty == []


def test_the_check_sees_a_missing_or_reshaped_function():
    class Port:
        def load(self, path, *, strict: bool) -> None: ...

        def save(self, data) -> None: ...

    class Adapter:
        @staticmethod
        def load(path, strict=False):  # takes strict by name: fills the port
            return None

    assert unfilled(Port, Adapter) == ["save: missing"]

    class Reshaped:
        @staticmethod
        def load(path, other, *, strict):
            return None

        @staticmethod
        def save(data):
            return None

    assert len(unfilled(Port, Reshaped)) == 1 and unfilled(Port, Reshaped)[0].startswith("load")
