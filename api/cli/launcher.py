"""The `tradecore` entry point: the top-level help without importing the commands.

`tradecore`, `tradecore --help` (and `-h`-less forms with --debug anywhere) print the top-level
help from COMMANDS below: the typer app is rebuilt from names and one-line helps only, so none of
the commands' modules (pydantic, the event store, psycopg, pandas) is imported and the process
starts in about a fifth of the time. Every other command line goes to api.cli.main, unchanged.
A test (tests/unit/test_cli_launcher.py) renders both helps and keeps them equal: a command
added, renamed or described differently in its module must be added here too.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

HELP = "Event-sourced trading core: every candle, decision, order and fill is an event."
DEBUG_HELP = "On failure show the Python traceback (also SYSTEM__LOG_LEVEL=DEBUG); may stand anywhere"

# (name, "command" or "group", the first paragraph of its help), in the order api.cli.main mounts them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ('events', 'command', 'Page through the log in order: id, occurred_at, type, actor, correlation, payload.'),
    ('catalogue', 'command', 'Print the event catalogue (Markdown): every event, its fields and meaning.'),
    ('backtest', 'command', 'Backtest a strategy over the candles the log holds for a product and bar size; every event is recorded.'),
    ('demo', 'command', 'The main job on the embedded default: backtest the bundled data with the rules strategy into a fresh store.'),
    ('project', 'command', 'Apply the log to the read model: per projection, events applied, position and seconds.'),
    ('query', 'command', 'Run one read-only query on the read model: anything but a plain SELECT is refused, and files stay out of reach.'),
    ('bots', 'command', 'List the bots that ran on the store: mode, product, latest run and its status, and any halt.'),
    ('halt', 'command', 'Halt trading (one bot with --bot, else every bot): no new entries until `tradecore resume`.\nP0 also cancels every working order.'),
    ('resume', 'command', "Lift a halt: one bot's own (--bot), or the one of every bot."),
    ('cancel-all', 'command', 'Ask the running bot (--bot) or every bot to cancel its working orders at the venue (does not halt).'),
    ('replay', 'command', 'Replay a UTC day of the log: what the bot saw, decided, ordered and got, and its state after each step.'),
    ('serve', 'command', 'Run a read node: follow the log into the read model and serve the REST API, /metrics and the dashboard.'),
    ('run', 'command', 'Trade on live Coinbase candles until Ctrl-C or SIGTERM (paper fills, or real orders with --mode live --live).'),
    ('health', 'command', 'Check memory, CPU, disk, API errors and latency, market-data age, LLM response rate, daily loss, halts.'),
    ('doctor', 'command', 'Check configuration, store, read model, Coinbase (clock skew, keys), the LLM, alert channels, disk, file modes.'),
    ('audit', 'group', 'Tamper evidence and exports for auditors.'),
    ('config', 'group', 'Check the configuration (every bad setting at once) and show the effective values, secrets masked.'),
    ('report', 'group', 'Reports from the read model (daily, performance).'),
    ('incident', 'group', 'Declare and resolve incidents (P0 halts trading).'),
    ('backup', 'group', 'Back up, verify, restore and prune snapshots of the event log.'),
    ('data', 'group', 'Market data: candles and product specs into the log, and what it holds.'),
    ('logs', 'group', "Read tradecore's logs: errors, outside calls, decisions and trades of a period."),
)


def wants_top_help(args: list[str]) -> bool:
    """True for `tradecore`, `tradecore --help` (--debug may stand anywhere)."""
    rest = [a for a in args if a != "--debug"]
    return rest in ([], ["--help"])


def help_app():
    """A typer app with the real one's options and every command's name and help, and no command behind them."""
    app = typer.Typer(name="tradecore", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False,
                      add_completion=False)

    @app.callback()
    def _global_options(debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False) -> None:
        pass

    def _never() -> None:  # pragma: no cover - only the help is ever shown
        raise AssertionError("the launcher's help app runs no command")

    for name, kind, text in COMMANDS:
        if kind == "command":
            app.command(name, help=text)(_never)
        else:
            app.add_typer(typer.Typer(help=text), name=name)
    return app


def main() -> None:
    """Console-script entry point."""
    if wants_top_help(sys.argv[1:]):
        help_app()(args=[a for a in sys.argv[1:] if a != "--debug"], prog_name="tradecore")
        return
    from api.cli.main import main as full

    full()


if __name__ == "__main__":  # pragma: no cover
    main()
