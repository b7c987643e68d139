"""The entry point's fast top-level help equals the full CLI's, and everything else reaches the full CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LAUNCHER = "import sys; from api.cli.launcher import main; sys.argv[0] = 'tradecore'; main()"
FULL = "import sys; from api.cli.main import main; sys.argv[0] = 'tradecore'; main()"


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["--debug", "--help"], ["--help", "--debug"], []])
def test_the_fast_help_is_the_full_clis_help(args):
    fast, full = _run(LAUNCHER, *args), _run(FULL, *args)
    assert (fast.stdout, fast.returncode, fast.stderr) == (full.stdout, full.returncode, full.stderr)


def test_the_index_reads_every_command_from_the_source():
    """The fast path is taken (not the fallback): every command api.cli.main mounts, in its order."""
    from api.cli.launcher import command_index

    shown = _run("import typer.main\nimport api.cli.main as m\nm._mount_optional()\n"
                 "print(list(typer.main.get_command(m.app).commands))")
    _, commands, groups = command_index()
    assert [name for name, _ in commands + groups] == eval(shown.stdout.strip().splitlines()[-1])  # noqa: S307


def test_the_fast_help_imports_no_command_module():
    shown = _run("import sys; sys.argv = ['tradecore', '--help']\nfrom api.cli.launcher import main\n"
                 "try:\n    main()\nexcept SystemExit:\n    pass\n"
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                 "('pydantic', 'eventsourcing', 'psycopg', 'pandas', 'domain', 'application', 'infrastructure')))")
    assert shown.stdout.strip().splitlines()[-1] == "[]"


def test_any_other_command_line_reaches_the_full_cli():
    result = _run(LAUNCHER, "backtest", "--help")
    assert result.returncode == 0 and "--bundled" in result.stdout
    result = _run(LAUNCHER, "no-such-command")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_a_stale_or_broken_cache_is_read_again_from_the_source():
    from api.cli import launcher

    expected = launcher.command_index()
    for bad in ('{"files": {"main.py": [0, 0]}, "index": ["stale", [], []]}', "not json"):
        launcher.CACHE.parent.mkdir(exist_ok=True)
        launcher.CACHE.write_text(bad, encoding="utf-8")
        assert launcher.cached_index() == expected
    assert launcher.cached_index() == expected  # and now from the rewritten cache
