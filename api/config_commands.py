"""`tradecore config ...`: check a configuration before a run, and show what is in effect.

Both commands read the environment and an optional TOML file through ``load_settings``, the single
entry point, so they see exactly what ``tradecore run`` would. Secrets are never printed: only
whether one is set and a sha256 fingerprint to tell two apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from infrastructure.settings import (
    ConfigurationError,
    SettingError,
    Settings,
    config_hash,
    effective_config,
    load_settings,
    settings_errors,
)

config_app = typer.Typer(
    help="Check the configuration (every bad setting at once) and show the effective values, secrets masked.",
    no_args_is_help=True,
)

ConfigFileOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="TOML settings file (sections [trading], [risk], ...); env vars win over it"),
]


def _inputs(ctx: typer.Context, config: Path | None) -> tuple[Path | None, Mapping[str, Any] | None]:
    """The TOML file and overrides: --config here, else what a parent app put in ctx.obj."""
    parent = ctx.obj if isinstance(ctx.obj, Mapping) else {}  # click passes a parent's obj down
    return (config if config is not None else parent.get("config_file")), parent.get("overrides")


def print_setting_errors(errors: list[SettingError], console: Console) -> None:
    """Every bad setting: path, the value given (secrets masked), why, and where it came from."""
    console.print(f"{len(errors)} problem(s) in the configuration:", style="bold red", highlight=False)
    if console.is_terminal:
        table = Table(
            Column("setting", no_wrap=True), "given", "problem", Column("from", overflow="fold"), show_lines=True
        )
        for e in errors:
            table.add_row(e.path, "" if e.value is None else repr(e.value), e.reason, e.source)
        console.print(table)
        return
    for e in errors:
        console.print(f"  {e}", markup=False, highlight=False, soft_wrap=True)


def masked_value(value: Any) -> str:
    """One effective value for display: secrets as ``**** (set, fp=...)`` or ``(not set)``."""
    if isinstance(value, dict) and set(value) == {"set", "fingerprint"}:
        return f"**** (set, fp={value['fingerprint']})" if value["set"] else "(not set)"
    if isinstance(value, list):
        return "[" + ", ".join(masked_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {masked_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def print_effective_config(settings: Settings, console: Console) -> None:
    """The effective configuration, one line (or table row) per setting, secrets masked."""
    config = effective_config(settings)
    if console.is_terminal:
        title = f"config hash {config_hash(settings)}"
        table = Table(Column("setting", no_wrap=True), Column("value", overflow="fold"), title=title)
        for section, fields in config.items():
            for name, value in fields.items():
                table.add_row(f"{section}.{name}", masked_value(value))
        console.print(table)
        return
    console.print(f"# config hash {config_hash(settings)}", markup=False, highlight=False)
    for section, fields in config.items():
        console.print(f"[{section}]", markup=False, highlight=False)
        for name, value in fields.items():
            console.print(f"{name} = {masked_value(value)}", markup=False, highlight=False, soft_wrap=True)


@config_app.command("validate")
def validate_command(ctx: typer.Context, config: ConfigFileOption = None) -> None:
    """Load the environment (and --config file); list every bad setting and exit 2, or say OK."""
    config_file, overrides = _inputs(ctx, config)
    console = Console()
    errors = settings_errors(config_file, None, overrides)
    if errors:
        print_setting_errors(errors, console)
        raise typer.Exit(2)
    console.print("configuration OK", highlight=False)


@config_app.command("show")
def show_command(
    ctx: typer.Context,
    config: ConfigFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the effective config as JSON")] = False,
) -> None:
    """Print the effective configuration, with secrets replaced by a fingerprint (--json: as JSON)."""
    config_file, overrides = _inputs(ctx, config)
    console = Console()
    try:
        settings = load_settings(config_file, None, overrides)
    except ConfigurationError as exc:
        print_setting_errors(exc.errors, Console(stderr=True))
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(effective_config(settings), indent=2))
        return
    print_effective_config(settings, console)
