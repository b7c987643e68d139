"""The entry point's fast top-level help equals the full CLI's, and everything else reaches the full CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LAUNCHER = "import sys; from api.cli.launcher import main; sys.argv[0] = 'tradecore'; main()"
FULL = "import sys; from api.cli.main import main; sys.argv[0] = 'tradecore'; main()"
SHOW_COMMANDS = """
import typer.main
import api.cli.main as m
m._mount_optional()
for name, cmd in typer.main.get_command(m.app).commands.items():
    print(repr((name, 'group' if hasattr(cmd, 'commands') else 'command', (cmd.help or '').split(chr(10) * 2)[0])) + ',')
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("args", [["--help"], [], ["--debug", "--help"], ["--help", "--debug"]])
def test_the_fast_help_is_the_full_clis_help(args):
    fast, full = _run(LAUNCHER, *args), _run(FULL, *args)
    if fast.stdout != full.stdout:
        listed = _run(SHOW_COMMANDS).stdout
        pytest.fail("api/cli/launcher.py COMMANDS differs from the commands api.cli.main mounts; "
                    f"set it to:\n{listed}")
    assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr)


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
