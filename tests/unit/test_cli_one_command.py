"""A command line that names one command runs an app holding only that command (api.cli.main.app_for), which
answers exactly as the whole app does: the same help, the same usage errors; anything else gets the whole app."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

import api.cli.main as cli


@pytest.fixture(scope="module")
def mounted():
    if not any(g.name == "data" for g in cli.app.registered_groups):  # _mount_optional adds, it does not replace
        cli._mount_optional()
    return cli.app


def _names(app) -> list[str]:
    return [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]


def _invoke(app, args: list[str]):
    result = CliRunner().invoke(app, args, prog_name="tradecore", env={"COLUMNS": "120", "TERM": "dumb"})
    return result.exit_code, result.output


def test_every_command_and_group_alone_gives_the_same_help(mounted):
    names = _names(mounted)
    assert {"backtest", "events", "data", "audit", "config"} <= set(names)
    for name in names:
        alone = cli.app_for([name, "--help"])
        assert _names(alone) == [name]
        assert _invoke(alone, [name, "--help"]) == _invoke(mounted, [name, "--help"]), name
    assert _names(cli.app) == names  # the whole app keeps every command


def test_the_one_command_app_builds_one_click_command(mounted):
    assert list(typer.main.get_command(cli.app_for(["backtest", "--bundled"])).commands) == ["backtest"]
    assert list(typer.main.get_command(cli.app_for(["data", "import", "x.csv"])).commands) == ["data"]


@pytest.mark.parametrize("args", [["backtest", "--no-such-option"], ["data", "no-such-subcommand"],
                                  ["data", "import"], ["events", "--limit", "0"]])
def test_usage_mistakes_read_the_same(mounted, args):
    assert _invoke(cli.app_for(args), args) == _invoke(mounted, args)


@pytest.mark.parametrize("args", [[], ["--help"], ["--debug", "backtest"], ["backtst"], ["Backtest"], ["back"]])
def test_anything_but_a_name_first_gets_the_whole_app(mounted, args):
    assert cli.app_for(args) is cli.app
