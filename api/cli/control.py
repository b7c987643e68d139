"""`tradecore halt | resume | cancel-all | incident open | incident resolve | bots`: the operator's controls.

They record events (actor = --actor, default the login name); the running
`tradecore run` process carries out cancels through its exchange session.
`--bot ID` scopes a control to one bot; `--all` (the default without `--bot`)
records it on the stream every bot obeys. `tradecore bots` lists the bots.
"""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Annotated, Optional

import typer

from api.cli.common import ConfigOption, StoreOption, fail, opened_store, resolve_store_url
from domain.control import Severity
from domain.events import DomainError

incident_app = typer.Typer(help="Declare and resolve incidents (P0 halts trading).", no_args_is_help=True)

ActorOption = Annotated[Optional[str], typer.Option("--actor", help="Who is acting (default: operator:<login name>)")]
BotOption = Annotated[Optional[str], typer.Option("--bot", help="Only this bot (its id: `tradecore bots`)")]
AllOption = Annotated[bool, typer.Option("--all", help="Every bot (the default without --bot)")]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"operator:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "operator"


def _controls(trading):
    from api.bootstrap import random_ids, wall_clock
    from application.operations.controls import OperatorControls

    return OperatorControls(trading, wall_clock(), random_ids())


def _record(store: str | None, config, action, bot: str | None = None, every: bool = False):
    """Open the store, record one control through OperatorControls, and turn a refusal into exit 1.

    ``bot``: the control is that bot's, which must have run on the store (a typo halts nothing);
    None: every bot's."""
    from application.operations.bots import bot_runs

    if bot is not None and every:
        fail("--bot and --all: choose one (one bot, or every bot)")
    with opened_store(resolve_store_url(store, config)) as trading:
        if bot is not None:
            known = sorted(bot_runs(trading))
            if bot not in known:
                fail(f"no bot {bot!r} has run on this store (bots: {', '.join(known) or 'none yet'})")
        try:
            return action(_controls(trading))
        except DomainError as exc:
            if bot is None and "not halted" in str(exc):
                halted = [b.bot_id for b in _bots(trading) if b.halted]
                if halted:
                    fail(f"{exc} for every bot; halted on their own: {', '.join(halted)} (use --bot ID)", 1)
            fail(str(exc), 1)


def _bots(trading):
    from application.operations.bots import list_bots

    return list_bots(trading)


def _whom(bot: str | None) -> str:
    return f"bot {bot}" if bot else "every bot"


def _severity(text: str) -> Severity:
    try:
        return Severity(text.upper())
    except ValueError:
        fail(f"--severity {text!r} is not one of P0, P1, P2, P3")


def halt(
    reason: Annotated[str, typer.Option("--reason", help="Why trading stops (recorded)")],
    severity: Annotated[str, typer.Option("--severity", help="P0 (also cancels every working order) to P3")] = "P1",
    actor: ActorOption = None,
    bot: BotOption = None,
    every: AllOption = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Halt trading (one bot with --bot, else every bot): no new entries until `tradecore resume`.
    P0 also cancels every working order."""
    level = _severity(severity)
    outcome = _record(store, config, lambda controls: controls.halt(reason, level, _actor(actor), bot), bot, every)
    note = " (already halted; cancel-all requested)" if outcome.already_halted else ""
    cancels = "; every working order will be cancelled by the running bot" if outcome.cancel_requested else ""
    typer.echo(f"trading halted for {_whom(bot)} ({level.value}){note}: {reason}{cancels}")


def resume(
    reason: Annotated[str, typer.Option("--reason", help="Who checked what before resuming")] = "resumed by operator",
    actor: ActorOption = None,
    bot: BotOption = None,
    every: AllOption = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Lift a halt: one bot's own (--bot), or the one of every bot."""
    _record(store, config, lambda controls: controls.resume(reason, _actor(actor), bot), bot, every)
    typer.echo(f"trading resumed for {_whom(bot)}: {reason}")


def cancel_all(
    reason: Annotated[str, typer.Option("--reason", help="Why")] = "cancel-all by operator",
    actor: ActorOption = None,
    bot: BotOption = None,
    every: AllOption = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Ask the running bot (--bot) or every bot to cancel its working orders at the venue (does not halt)."""
    _record(store, config, lambda controls: controls.cancel_all(reason, _actor(actor), bot), bot, every)
    typer.echo(f"cancel-all requested for {_whom(bot)}: each running bot cancels its working orders")


@incident_app.command("open")
def incident_open(
    severity: Annotated[str, typer.Option("--severity", help="P0 (halts trading, cancels orders) to P3")],
    kind: Annotated[str, typer.Option("--kind", help="What kind of incident, e.g. exchange-outage")],
    details: Annotated[str, typer.Option("--details", help="What happened")],
    actor: ActorOption = None,
    bot: BotOption = None,
    every: AllOption = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Declare an incident (about one bot with --bot, else every bot); prints its id."""
    level = _severity(severity)
    outcome = _record(store, config, lambda controls: controls.open_incident(level, kind, details, _actor(actor), bot),
                      bot, every)
    if as_json:
        typer.echo(json.dumps({"incident_id": str(outcome.incident_id), "severity": level.value,
                               "halted": outcome.halted is not None}))
    else:
        extra = "; trading halted and cancel-all requested" if outcome.halted else ""
        typer.echo(f"incident {outcome.incident_id} opened ({level.value}){extra}")


@incident_app.command("resolve")
def incident_resolve(
    incident_id: Annotated[str, typer.Argument(help="The incident id printed by `incident open`")],
    note: Annotated[str, typer.Option("--note", help="How it was resolved")],
    actor: ActorOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Resolve an incident (does not resume trading: `tradecore resume` does)."""
    try:
        key = uuid.UUID(incident_id)
    except ValueError:
        fail(f"{incident_id!r} is not an incident id (a UUID)")
    _record(store, config, lambda controls: controls.resolve_incident(key, note, _actor(actor)))
    typer.echo(f"incident {key} resolved")


def bots_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per bot")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """List the bots that ran on the store: mode, product, latest run and its status, and any halt."""
    with opened_store(resolve_store_url(store, config), read_only=True) as trading:
        bots = _bots(trading)
    if as_json:
        typer.echo(json.dumps([b.to_dict() for b in bots]))
        return
    if not bots:
        typer.echo("no bot has run on this store yet (`tradecore run --mode paper` starts one)")
        return
    for b in bots:
        halt = f"HALTED ({b.halted_by}, {b.halt_severity}): {b.halt_reason}" if b.halted else "trading"
        typer.echo(f"{b.bot_id}  {b.mode} {b.product} {b.granularity} {b.strategy}  run {b.run_id} {b.status} "
                   f"since {b.started_at.isoformat()}  runs={b.runs}  {halt}")


def register(app: typer.Typer) -> None:
    app.command("bots")(bots_command)
    app.command("halt")(halt)
    app.command("resume")(resume)
    app.command("cancel-all")(cancel_all)
    app.add_typer(incident_app, name="incident")
