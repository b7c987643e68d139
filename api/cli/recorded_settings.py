"""The settings a recorded run had, and the changes a what-if may make to them (`tradecore replay`).

A replay re-executes a day with the configuration the run used: the baseline whose hash the run's
`RunStarted` recorded, else the changes recorded before the run on top of defaults, ``--config`` and the
environment. The note says which, and whether the rebuilt hash matches the recorded one.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from api.cli.common import fail, load_cli_settings

# Settings a what-if may change, and those the run's own RunStarted fixes.
RUN_FIXED = ("trading.product", "trading.granularity")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _recorded_config(log) -> tuple[dict[str, str], str]:
    """Overrides from the log as the run started: a baseline with the run's hash, else the recorded changes."""
    from api.config_view import is_secret_path
    from application.operations.config_service import overrides_from

    run = log.run
    for e in reversed(log.config_before_run):
        if type(e).__name__ == "ConfigBaselineSet" and run and e.config_hash == run.config_hash:
            values = {k: v for k, v in e.values.items() if not is_secret_path(k) and not k.startswith("eventstore.")}
            return values, "the config baseline with the run's hash"
    return overrides_from(log.config_before_run), "defaults, --config, environment and the changes recorded before the run"


def _plain_value(value: str) -> Any:
    # Canonical strings of flatten_config: JSON for numbers/booleans/null/lists, plain text otherwise.
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


def run_settings(log, config: Path | None, store_url: str):
    """The settings in effect for the run, and whether their hash is the one its RunStarted recorded."""
    recorded, source = _recorded_config(log)
    run = log.run
    overrides: dict[str, Any] = {k: _plain_value(v) for k, v in recorded.items()}
    overrides["eventstore.url"] = store_url
    if run is not None:
        overrides.update({"trading.product": run.product, "trading.granularity": run.granularity,
                          "trading.strategy": run.strategy if run.strategy in ("rules", "llm") else None,
                          "trading.initial_balance": run.initial_balance})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    settings, dropped = _load_tolerant(config, overrides)
    for path in dropped:
        overrides.pop(path, None)
    if dropped:
        source += f"; ignored recorded settings this version refuses: {', '.join(dropped)}"
    digest = settings.config_hash()
    matched = run is not None and digest == run.config_hash
    return settings, overrides, source, matched, digest


def _load_tolerant(config: Path | None, overrides: dict[str, Any]):
    """Settings with the recorded overrides; a recorded one this version no longer accepts is dropped, not fatal."""
    from api.bootstrap import configuration
    from application.errors import ConfigurationError

    try:
        return configuration().load_settings(config_file=config, overrides=overrides), []
    except ConfigurationError as exc:
        dropped = sorted({e.path for e in exc.errors if e.path in overrides})
    if not dropped:
        return load_cli_settings(config, overrides), []
    kept = {k: v for k, v in overrides.items() if k not in dropped}
    return load_cli_settings(config, kept), dropped


def config_note(run, source: str, matched: bool, digest: str) -> str:
    if run is None:
        return ""
    if matched:
        return f"config in effect: hash {digest[:12]} matches the run's RunStarted ({source})"
    return (f"warning: the config rebuilt from {source} has hash {digest[:12]}, the run recorded "
            f"{run.config_hash[:12]}: pass the --config file (and environment) the run used")


def what_if_changes(path: Path) -> dict[str, Any]:
    """The what-if TOML, validated with the settings loader: a bad key or value exits 2 naming it."""
    from api.bootstrap import configuration
    from application.errors import ConfigurationError

    if not path.is_file():
        fail(f"--what-if {path}: file not found")
    try:
        configuration().load_settings(config_file=path, env={})
    except ConfigurationError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.errors)
        fail(f"--what-if {path} is not valid settings:\n{lines}")
    data = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    flat = _flat(data)
    fixed = [k for k in flat if k in RUN_FIXED or k.startswith("eventstore.")]
    if fixed:
        fail(f"--what-if {path}: {', '.join(fixed)} cannot change in a what-if (the recorded candles fix them)")
    if not flat:
        fail(f"--what-if {path} changes nothing")
    return flat
