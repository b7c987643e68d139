"""`tradecore config ...`: check a configuration, show it, and govern its changes through the log.

``validate`` and ``show`` read the environment and an optional TOML file through ``load_settings``,
the single entry point. ``baseline``, ``set``, ``unset`` and ``drift`` also apply the changes
recorded in the event log (``ConfigChanged``): defaults < TOML < environment < recorded changes <
CLI flags. Secrets are never printed or recorded: ``show`` gives whether one is set and a sha256
fingerprint; ``drift`` only set/unset; ``set`` refuses secret paths.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from api.bootstrap import configuration, store_location
from api.cli.common import StoreOption, opened_store
from api.config_view import drift_row, is_secret_path, shown_value, sounds_secret
from application.errors import ConfigurationError
from application.operations.config_service import (
    NOT_SETTABLE_THROUGH_LOG,
    Baseline,
    config_drift,
    ledger_events,
    overrides_from,
    recorded_overrides,
)
from domain.events import EventMeta

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


def print_setting_errors(errors: list, console: Console) -> None:
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


def print_effective_config(settings, console: Console, sources: Mapping[str, str] | None = None) -> None:
    """The effective configuration, one line (or table row) per setting, secrets masked, with each value's source."""
    config = settings.effective_config()
    sources = sources or {}
    if console.is_terminal:
        title = f"config hash {settings.config_hash()}"
        table = Table(Column("setting", no_wrap=True), Column("value", overflow="fold"),
                      Column("source", overflow="fold"), title=title)
        for section, fields in config.items():
            for name, value in (fields.items() if isinstance(fields, dict) else ()):
                path = f"{section}.{name}"
                table.add_row(path, masked_value(value), sources.get(path, "default"))
        console.print(table)
        return
    console.print(f"# config hash {settings.config_hash()}", markup=False, highlight=False)
    for section, fields in config.items():
        console.print(f"[{section}]", markup=False, highlight=False)
        for name, value in (fields.items() if isinstance(fields, dict) else ()):
            source = sources.get(f"{section}.{name}", "default")
            console.print(f"{name} = {masked_value(value)}  # {source}", markup=False, highlight=False, soft_wrap=True)


@config_app.command("validate")
def validate_command(ctx: typer.Context, config: ConfigFileOption = None) -> None:
    """Load the environment (and --config file); list every bad setting and exit 2, or say OK."""
    config_file, overrides = _inputs(ctx, config)
    console = Console()
    errors = configuration().settings_errors(config_file, None, overrides)
    if errors:
        print_setting_errors(errors, console)
        raise typer.Exit(2)
    console.print("configuration OK", highlight=False)


@config_app.command("show")
def show_command(
    ctx: typer.Context,
    config: ConfigFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the effective config as JSON")] = False,
    store: StoreOption = None,
) -> None:
    """Print the effective configuration (changes recorded with `config set` included) and each value's source.

    Secrets are replaced by a fingerprint. The recorded changes are read from --store (default
    EVENTSTORE__URL); a store that does not exist yet has none, and is not created.
    """
    config_file, flags = _cli_flags(ctx, config, store)
    base = _load_or_exit(config_file, flags)
    recorded, labels, note = _recorded_layer(base.eventstore.url)
    settings = _load_or_exit(config_file, {**recorded, **flags})
    flag_labels = {path: "command-line flag" for path in flags}
    sources = configuration().setting_sources(config_file, None, {**recorded, **flags}, override_labels={**labels, **flag_labels})
    if as_json:
        extra = {"sources": sources, **({"note": note} if note else {})}
        typer.echo(json.dumps({**settings.effective_config(), **extra}, indent=2))
        return
    if note:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    print_effective_config(settings, Console(), sources)


def _recorded_layer(url: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(recorded changes, their source labels, a note when the store could not be read)."""
    from api.bootstrap import open_store
    from application.operations.config_service import recorded_sources

    location = store_location(url)
    if location.backend == "sqlite" and not Path(location.sqlite_path).exists():
        return {}, {}, None  # no store yet: nothing recorded (and none is created)
    try:
        trading = open_store(url)
    except Exception as exc:  # noqa: BLE001 - shown without the log's changes, and said so
        return {}, {}, f"recorded changes not shown: {exc}"
    try:
        events = ledger_events(trading)
    finally:
        trading.close()
    return overrides_from(events), recorded_sources(events), None


# ---- baseline, recorded changes and drift ------------------------------------------------------
#
# The effective configuration, lowest to highest: defaults < TOML file < environment < changes
# recorded in the log by `config set` < command-line flags (--store). The log part comes from
# application.operations.config_service.recorded_overrides; everything that loads settings stays here.

ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded with the event)")]


def operator_actor() -> str:
    """``operator:<login name>``, read here at the CLI edge (the domain never reads the environment)."""
    return f"operator:{os.environ.get('USER') or 'cli'}"


def _now_meta() -> EventMeta:
    return EventMeta(datetime.now(timezone.utc), actor=operator_actor())


def _cli_flags(ctx: typer.Context, config: Path | None, store: str | None) -> tuple[Path | None, dict[str, Any]]:
    """The TOML file and the CLI-flag overrides (a parent app's overrides, then --store)."""
    config_file, parent = _inputs(ctx, config)
    flags: dict[str, Any] = dict(parent or {})
    if store:
        flags["eventstore.url"] = store
    return config_file, flags


def _load_or_exit(config_file: Path | None, overrides: Mapping[str, Any]):
    try:
        return configuration().load_settings(config_file, None, overrides)
    except ConfigurationError as exc:
        print_setting_errors(exc.errors, Console(stderr=True, soft_wrap=True))
        raise typer.Exit(2) from None


def _layered(recorded: Mapping[str, str], change: Mapping[str, str], flags: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides for load_settings: recorded changes < this change < CLI flags (later keys win)."""
    return {**recorded, **change, **flags}


def effective_settings(
    config_file: Path | None, flags: Mapping[str, Any], recorded: Mapping[str, str]
):
    """defaults < TOML < environment < recorded changes < CLI flags; invalid ones exit 2."""
    return _load_or_exit(config_file, _layered(recorded, {}, flags))


def _refuse(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]refused:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


@config_app.command("baseline")
def baseline_command(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why this configuration is approved")] = "",
    store: StoreOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Record the effective configuration (env, TOML and recorded changes) as the approved baseline."""
    config_file, flags = _cli_flags(ctx, config, store)
    url = _load_or_exit(config_file, flags).eventstore.url
    with opened_store(url) as trading:
        settings = effective_settings(config_file, flags, recorded_overrides(trading))
        values, digest = settings.flat_config(), settings.config_hash()
        meta = _now_meta()
        trading.set_config_baseline(values, digest, meta, reason)
    typer.echo(f"baseline recorded: {len(values)} settings, config hash {digest} (by {meta.actor})")


@config_app.command("set", context_settings={"ignore_unknown_options": True})  # VALUE may be -5
def set_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Dotted setting path, e.g. risk.max_daily_loss_pct")],
    value: Annotated[str, typer.Argument(help="New value, validated like the environment's")],
    reason: ReasonOption,
    store: StoreOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Change one setting through the log (ConfigChanged); it then wins over env and TOML.

    Refused (exit 2, nothing written): an unknown path, an invalid value, a secret (set secrets
    through the environment, never the log), eventstore.url. A value already in effect records nothing.
    """
    if not reason.strip():
        _refuse("--reason must say why the setting changes")
    config_file, flags = _cli_flags(ctx, config, store)
    base = _load_or_exit(config_file, flags)
    known = base.flat_config()
    if is_secret_path(path):
        _refuse(f"{path} is a secret: set secrets through the environment, never the log (nothing recorded, value not shown)")
    if path not in known:
        close = difflib.get_close_matches(path, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `tradecore config show` for the settings"
        secretish = sounds_secret(path) or any(is_secret_path(c) for c in close)  # a typo of a secret's name
        given = "****" if secretish else repr(value)
        _refuse(f"unknown setting path {path!r} (value {given} not recorded){hint}")
    if path in NOT_SETTABLE_THROUGH_LOG:
        _refuse(f"{path} cannot be set through the log: {NOT_SETTABLE_THROUGH_LOG[path]}")
    with opened_store(base.eventstore.url) as trading:
        recorded = recorded_overrides(trading)
        before = effective_settings(config_file, flags, recorded)
        try:
            after = configuration().load_settings(config_file, None, _layered(recorded, {path: value}, flags))
        except ConfigurationError as exc:
            err = Console(stderr=True, soft_wrap=True)
            err.print(f"[red]refused:[/red] {escape(f'{path} = {value!r}')} is not valid (nothing recorded):", highlight=False)
            for e in exc.errors:
                source = "this change" if e.path == path and e.source == "override" else (e.source or "default")
                given = "" if e.value is None else f" = {e.value!r}"
                err.print(f"  {e.path}{given}: {e.reason} (from {source})", markup=False, highlight=False)
            raise typer.Exit(2) from None
        old, new = before.flat_config()[path], after.flat_config()[path]
        if old == new:
            typer.echo(f"{path} is already {new}: nothing recorded")
            return
        meta = _now_meta()
        digest = after.config_hash()
        if not trading.change_config(path, new, reason.strip(), digest, meta, in_effect=old, knows_effective=True):
            Console(stderr=True, soft_wrap=True).print(
                "[yellow]not recorded:[/yellow] "
                + escape(
                    f"the config ledger already holds {path} = {new} (from the last baseline), but the "
                    f"environment or TOML file now gives {old}. Restore the environment, or record a new baseline."
                ),
                highlight=False,
            )
            raise typer.Exit(1)
    typer.echo(f"{path}: {old} -> {new} recorded by {meta.actor} (config hash {digest})")


@config_app.command("unset")
def unset_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Dotted setting path changed earlier with `config set`")],
    reason: ReasonOption,
    store: StoreOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Drop the recorded change of PATH (ConfigChanged to null): env, TOML or the default apply again."""
    if not reason.strip():
        _refuse("--reason must say why the recorded change is dropped")
    config_file, flags = _cli_flags(ctx, config, store)
    base = _load_or_exit(config_file, flags)
    with opened_store(base.eventstore.url) as trading:
        recorded = recorded_overrides(trading)
        if path not in recorded:
            typer.echo(f"{path} has no recorded change: nothing to unset")
            return
        rest = {k: v for k, v in recorded.items() if k != path}
        after = effective_settings(config_file, flags, rest)
        meta = _now_meta()
        digest = after.config_hash()
        trading.change_config(path, None, reason.strip(), digest, meta)
    now = shown_value(path, after.flat_config()[path])
    typer.echo(f"{path}: recorded {recorded[path]} dropped by {meta.actor}; now {now} (config hash {digest})")


@config_app.command("drift")
def drift_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object")] = False,
    store: StoreOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Compare the effective configuration with the last baseline: path, baseline, current, who, when.

    Exit 0: no drift; 3: something drifted; 2: no baseline yet (or a bad configuration).
    Differences not explained by a recorded change are attributed to "environment" (env or TOML).
    """
    config_file, flags = _cli_flags(ctx, config, store)
    url = _load_or_exit(config_file, flags).eventstore.url
    with opened_store(url, read_only=True) as trading:
        events = ledger_events(trading)
    settings = effective_settings(config_file, flags, overrides_from(events))
    report = config_drift(events, settings.flat_config(), settings.config_hash())
    if report is None:
        Console(stderr=True, soft_wrap=True).print(
            "no baseline yet: record one with `tradecore config baseline --reason ...`", highlight=False
        )
        raise typer.Exit(2)
    rows = [drift_row(item) for item in report.items]
    b = report.baseline
    if as_json:
        doc = {
            "drifted": report.drifted,
            "baseline": {
                "config_hash": b.config_hash,
                "set_at": b.occurred_at.isoformat(),
                "actor": b.actor,
                "reason": b.reason,
            },
            "current_hash": report.current_hash,
            "changes": rows,
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_drift(rows, b, report.current_hash)
    raise typer.Exit(3 if report.drifted else 0)


def _print_drift(rows: list[dict[str, Any]], b: Baseline, current_hash: str) -> None:
    console = Console(soft_wrap=True)
    since = f"baseline {b.config_hash[:12]} set {b.occurred_at.isoformat()} by {b.actor}"
    if not rows:
        console.print(f"no drift: the effective configuration matches the {since}", markup=False, highlight=False)
        return
    console.print(
        f"{len(rows)} setting(s) drifted from the {since} (now {current_hash[:12]}):", markup=False, highlight=False
    )
    if console.is_terminal:
        table = Table(Column("setting", no_wrap=True), "baseline", "current", "changed by", "when", "reason")
        for r in rows:
            cells = (r["path"], r["baseline"] or "(absent)", r["current"] or "(absent)", r["actor"])
            table.add_row(*(escape(c) for c in (*cells, r["occurred_at"] or "-", r["reason"] or "")))
        console.print(table)
        return
    for r in rows:
        line = (
            f"  {r['path']}  baseline={r['baseline'] or '(absent)'}  current={r['current'] or '(absent)'}  "
            f"by={r['actor']}  at={r['occurred_at'] or '-'}"
        )
        if r["reason"]:
            line += f"  reason={r['reason']!r}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
