"""`tradecore halt | resume | cancel-all | incident open | incident resolve`: the operator's controls.

They record events (actor = --actor, default the login name); the running
`tradecore run` process carries out cancels through its exchange session.
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


def _record(store: str | None, config, action):
    """Open the store, record one control through OperatorControls, and turn a refusal into exit 1."""
    with opened_store(resolve_store_url(store, config)) as trading:
        try:
            return action(_controls(trading))
        except DomainError as exc:
            fail(str(exc), 1)


def _severity(text: str) -> Severity:
    try:
        return Severity(text.upper())
    except ValueError:
        fail(f"--severity {text!r} is not one of P0, P1, P2, P3")


def halt(
    reason: Annotated[str, typer.Option("--reason", help="Why trading stops (recorded)")],
    severity: Annotated[str, typer.Option("--severity", help="P0 (also cancels every working order) to P3")] = "P1",
    actor: ActorOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Halt trading: no new entries until `tradecore resume`. P0 also cancels every working order."""
    level = _severity(severity)
    outcome = _record(store, config, lambda controls: controls.halt(reason, level, _actor(actor)))
    note = " (already halted; cancel-all requested)" if outcome.already_halted else ""
    cancels = "; every working order will be cancelled by the running bot" if outcome.cancel_requested else ""
    typer.echo(f"trading halted ({level.value}){note}: {reason}{cancels}")


def resume(
    reason: Annotated[str, typer.Option("--reason", help="Who checked what before resuming")] = "resumed by operator",
    actor: ActorOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Lift a halt."""
    _record(store, config, lambda controls: controls.resume(reason, _actor(actor)))
    typer.echo(f"trading resumed: {reason}")


def cancel_all(
    reason: Annotated[str, typer.Option("--reason", help="Why")] = "cancel-all by operator",
    actor: ActorOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Ask the running bot to cancel every working order at the venue (does not halt)."""
    _record(store, config, lambda controls: controls.cancel_all(reason, _actor(actor)))
    typer.echo("cancel-all requested: the running bot cancels every working order")


@incident_app.command("open")
def incident_open(
    severity: Annotated[str, typer.Option("--severity", help="P0 (halts trading, cancels orders) to P3")],
    kind: Annotated[str, typer.Option("--kind", help="What kind of incident, e.g. exchange-outage")],
    details: Annotated[str, typer.Option("--details", help="What happened")],
    actor: ActorOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Declare an incident; prints its id."""
    level = _severity(severity)
    outcome = _record(store, config, lambda controls: controls.open_incident(level, kind, details, _actor(actor)))
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


def register(app: typer.Typer) -> None:
    app.command("halt")(halt)
    app.command("resume")(resume)
    app.command("cancel-all")(cancel_all)
    app.add_typer(incident_app, name="incident")
