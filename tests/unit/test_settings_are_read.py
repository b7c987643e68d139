"""Every setting docs/configuration.md documents is read by the code that it claims to steer.

A setting nobody reads is worse than none: the operator sets it and nothing happens. A setting
counts as read when a module outside infrastructure/settings/ names it as an attribute of its
section (``settings.system.log_level``, or ``x = settings.system`` and ``x.log_level`` in the
same module).
"""

from __future__ import annotations

import re
from pathlib import Path

from infrastructure.settings.loading import flatten_config, load_settings

REPO = Path(__file__).resolve().parents[2]
CODE = ("api", "application", "infrastructure", "projections", "domain")
# Read generically rather than by attribute: api/cli/config.py and the secret masker walk every field.
GENERIC = {"llm.prices"}


def documented_paths() -> list[str]:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"^\| `[A-Z_]+` \| `([a-z_]+\.[a-z_]+)` \|", doc, flags=re.MULTILINE)))


def sources() -> dict[Path, str]:
    out = {}
    for top in CODE:
        for path in (REPO / top).rglob("*.py"):
            if "infrastructure/settings" not in path.as_posix():
                out[path] = path.read_text(encoding="utf-8")
    return out


def is_read(path: str, code: dict[Path, str]) -> bool:
    section, key = path.split(".")
    direct = re.compile(rf"\.{section}\.{key}\b")
    section_ref = re.compile(rf"\.{section}\b")
    attribute = re.compile(rf"\.{key}\b")
    return any(direct.search(text) or (section_ref.search(text) and attribute.search(text)) for text in code.values())


def test_the_documentation_lists_every_setting_and_nothing_else():
    documented = set(documented_paths())
    actual = set(flatten_config(load_settings(env={})))
    assert documented - actual == set(), "documented but not a setting"
    assert actual - documented - GENERIC == set(), "a setting the documentation does not list"


def test_every_documented_setting_is_read_by_the_code():
    code = sources()
    unread = [path for path in documented_paths() if path not in GENERIC and not is_read(path, code)]
    assert unread == [], f"documented settings no code reads (use them or remove them from both): {unread}"


def test_the_check_catches_a_setting_nobody_reads():
    code = {Path("x.py"): "value = settings.system.log_level\n"}
    assert is_read("system.log_level", code)
    assert not is_read("system.log_retention_days", code)
