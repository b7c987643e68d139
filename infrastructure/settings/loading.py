"""tradecore's settings: one validated object from defaults, a TOML file, the environment and flags.

``load_settings`` is the single entry point. Precedence, highest first:
overrides (CLI flags such as ``--store``) > environment (``RISK__MAX_DAILY_LOSS_PCT=3``) >
TOML file (``[risk] max_daily_loss_pct = 3``) > defaults. No ``.env`` file is read implicitly.

``settings_errors`` lists every bad field at once (path, value given, why, where it came from),
and the effective-config helpers give a secret-free view for ``ConfigChanged`` events, drift and
``tradecore config show``: secrets appear only as "set or not" and a sha256 fingerprint.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from application.errors import ConfigurationError  # defined there (api/ maps it); this path stays valid
from infrastructure.settings.sections import (
    SECRET_FIELD_NAMES,
    PLAIN_FIELD_NAMES,
    AlertingSection,
    AuditSection,
    BackupSection,
    DataSection,
    EventStoreSection,
    ExchangeSection,
    LlmSection,
    MonitoringSection,
    PaperSection,
    ProductTables,
    ReadModelSection,
    RiskSection,
    SystemSection,
    TradingSection,
    cross_section_problems,
    is_secret_field,
    secret_fingerprint,
)

__all__ = [
    "ConfigurationError",
    "SettingError",
    "Settings",
    "config_hash",
    "effective_config",
    "flatten_config",
    "is_secret_path",
    "load_settings",
    "secret_fingerprint",
    "settings_errors",
    "sounds_secret",
]


@dataclass(frozen=True)
class SettingError:
    """One bad setting: its dotted path, the value given (masked if secret), why, and its source."""

    path: str
    value: str | None
    reason: str
    source: str = ""

    def __str__(self) -> str:
        given = "" if self.value is None else f" = {self.value!r}"
        origin = f" (from {self.source})" if self.source else ""
        return f"{self.path}{given}: {self.reason}{origin}"


class _CrossFieldProblems(ValueError):
    """Raised by the whole-settings check; carries (path, value, reason) for each problem."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" for path, _, reason in problems))


# While load_settings validates, this holds the already merged layers so Settings() uses only them.
_MERGED_INPUT: ContextVar[dict[str, Any] | None] = ContextVar("tradecore_merged_settings", default=None)


class Settings(BaseSettings):
    """All of tradecore's settings, one frozen section per concern; build it with ``load_settings``."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_prefix="",
        case_sensitive=False,
        env_ignore_empty=True,
        env_file=None,
        extra="forbid",
        frozen=True,
    )

    trading: TradingSection = TradingSection()
    risk: RiskSection = RiskSection()
    llm: LlmSection = LlmSection()
    exchange: ExchangeSection = ExchangeSection()
    data: DataSection = DataSection()
    paper: PaperSection = PaperSection()
    system: SystemSection = SystemSection()
    monitoring: MonitoringSection = MonitoringSection()
    alerting: AlertingSection = AlertingSection()
    eventstore: EventStoreSection = EventStoreSection()
    readmodel: ReadModelSection = ReadModelSection()
    backup: BackupSection = BackupSection()
    audit: AuditSection = AuditSection()
    products: ProductTables = {}

    def effective_config(self) -> dict[str, Any]:
        """Every setting as JSON-able data, secrets as whether set and a fingerprint (``effective_config``)."""
        return effective_config(self)

    def config_hash(self) -> str:
        """sha256 of the canonical effective configuration: equal hashes mean equal behaviour (``config_hash``)."""
        return config_hash(self)

    def flat_config(self) -> dict[str, str]:
        """Dotted path -> canonical string, secrets as ``set:<fingerprint>``/``unset`` (``flatten_config``)."""
        return flatten_config(self)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = cross_section_problems(self)
        if problems:
            raise _CrossFieldProblems(problems)
        return self

    @classmethod
    def settings_customise_sources(  # noqa: ANN206
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings  # noqa: ANN001
    ):
        """Plain ``Settings()``: kwargs > os.environ > defaults (no .env). Under load_settings: its merged layers."""
        merged = _MERGED_INPUT.get()
        if merged is not None:
            return (InitSettingsSource(settings_cls, init_kwargs=merged),)
        return (init_settings, _MappingEnvSource(settings_cls, os.environ))


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, fed from an explicit mapping, and tolerant of bad JSON.

    Only ``SECTION__KEY`` names are read: a bare ``DATA`` or ``SYSTEM`` variable from the host is
    ignored. A value that is not valid JSON is passed on as text so validation names the field.
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:  # noqa: ANN001
        return None, field_name, False

    def decode_complex_value(self, field_name: str, field, value: Any) -> Any:  # noqa: ANN001
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load and validate settings; raise ConfigurationError naming every bad field.

    ``env`` defaults to ``os.environ``; pass a dict in tests. ``overrides`` may be nested
    (``{"eventstore": {"url": ...}}``) or dotted (``{"eventstore.url": ...}``); None values are
    skipped so unset CLI flags can be passed straight through.
    """
    settings, errors = _resolve(config_file, env, overrides)
    if errors or settings is None:
        raise ConfigurationError(errors)
    return settings


def settings_errors(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[SettingError]:
    """Every problem with this configuration at once; an empty list means it loads."""
    return _resolve(config_file, env, overrides)[1]


def _resolve(
    config_file: Path | None, env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> tuple[Settings | None, list[SettingError]]:
    errors: list[SettingError] = []
    merged, origins, file_error = _merged_layers(config_file, env, overrides)
    if file_error:
        errors.append(file_error)

    token = _MERGED_INPUT.set(merged)
    try:
        settings: Settings | None = Settings()
    except ValidationError as exc:
        settings = None
        errors.extend(_translate(exc, origins))
    finally:
        _MERGED_INPUT.reset(token)
    return settings, errors


def _merged_layers(
    config_file: Path | None, env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str], SettingError | None]:
    """The input layers merged (file < environment < overrides), where each path came from, a file problem."""
    layers: list[tuple[str, dict[str, Any]]] = []
    file_error = None
    if config_file is not None:
        file_data, file_error = _read_toml(Path(config_file))
        layers.append((f"config file {config_file}", file_data))
    layers.append(("environment", _MappingEnvSource(Settings, os.environ if env is None else env)()))
    layers.append(("override", _nest(overrides or {})))
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for label, data in layers:
        merged = _deep_merge(merged, data)
        for path in _leaf_paths(data):
            origins[path] = f"{label} {path.upper().replace('.', '__')}" if label == "environment" else label
    return merged, origins, file_error


def setting_sources(
    config_file: Path | None = None, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
    override_labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Where each setting's effective value comes from: ``default``, ``config file F``,
    ``environment SECTION__KEY`` or ``override`` (``override_labels`` names an override better,
    e.g. a change recorded in the log). Keys are the dotted paths of ``flatten_config``."""
    _, origins, _ = _merged_layers(config_file, env, overrides)
    sources: dict[str, str] = {}
    for section, model in Settings.model_fields.items():
        for name in getattr(model.annotation, "model_fields", {}) or {}:
            path = f"{section}.{name}"
            origin = origins.get(path, "default")  # exactly this path: a section's other keys keep their own
            if origin == "override" and override_labels and path in override_labels:
                origin = override_labels[path]
            sources[path] = origin
    return sources


def _read_toml(path: Path) -> tuple[dict[str, Any], SettingError | None]:
    if not path.is_file():
        return {}, SettingError("config_file", str(path), "config file not found", "--config")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal), None
    except tomllib.TOMLDecodeError as exc:
        return {}, SettingError("config_file", str(path), f"not valid TOML: {exc}", "--config")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, SettingError("config_file", str(path), f"cannot read: {exc}", "--config")


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            value = _nest(value)
        *parents, leaf = str(key).split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _deep_merge(target.get(leaf, {}), value) if isinstance(value, dict) else value
    return nested


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, path + ".")
        yield path


# ---- error translation -------------------------------------------------------------------------

SECRETISH = re.compile(r"key|secret|token|password|webhook", re.IGNORECASE)
"""Names that sound like a secret's: their values are never echoed back."""
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _translate(exc: ValidationError, origins: Mapping[str, str]) -> list[SettingError]:
    out: list[SettingError] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        cross = (err.get("ctx") or {}).get("error")
        if isinstance(cross, _CrossFieldProblems):
            found = [(p, v, r) for p, v, r in cross.problems]
        else:
            # unknown keys are kept verbatim; otherwise drop pydantic's union tags ("function-after[...]")
            keep_all = err["type"] == "extra_forbidden"
            loc = [p for p in err["loc"] if keep_all or isinstance(p, int) or p.isidentifier()]
            path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(loc))
            found = [(path or "settings", _mask(loc, err.get("input")), _reason(err, loc))]
        for path, value, reason in found:
            if (path, reason) in seen:
                continue
            seen.add((path, reason))
            shown = value if isinstance(value, str) or value is None else _mask(path.split("."), value)
            out.append(SettingError(path, shown, reason, _origin(path, origins)))
    return out


def _reason(err: Mapping[str, Any], loc: list[Any]) -> str:
    if err["type"] == "extra_forbidden" and len(loc) == 1:
        return f"unknown section (known: {', '.join(Settings.model_fields)})"
    if err["type"] == "extra_forbidden":
        return f"unknown setting in [{'.'.join(map(str, loc[:-1]))}]"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _origin(path: str, origins: Mapping[str, str]) -> str:
    probe = path.split("[")[0]
    while probe:
        if probe in origins:
            return origins[probe]
        probe = probe.rpartition(".")[0]
    return "default"


def _mask(loc: list[Any], value: Any) -> str | None:
    """Render a given value for an error message without revealing secrets."""
    if value is None:
        return None
    names = [p for p in loc if isinstance(p, str)]
    if names and _secret_name(names[-1]):
        return "****"
    if isinstance(value, Mapping):
        value = {k: ("****" if _secret_name(str(k)) else _mask([], v)) for k, v in value.items()}
        return json.dumps(value, default=str)[:300]
    if isinstance(value, list):
        return json.dumps([_mask([], v) for v in value], default=str)[:300]
    return _URL_PASSWORD.sub(r"\1****@", str(value))[:300]


def is_secret_path(path: str) -> bool:
    """Whether a dotted path names a secret (API keys, the API token list, the alert webhook)."""
    section, _, name = path.partition(".")
    model = Settings.model_fields.get(section)
    fields = getattr(model.annotation, "model_fields", {}) if model else {}
    if name == "api_tokens" or "[" in name:
        return True
    return name in fields and is_secret_field(model.annotation, name)


def sounds_secret(path: str) -> bool:
    """Whether a path (known or not, e.g. a typo) sounds like a secret's: its value is not echoed back."""
    return bool(SECRETISH.search(path))


def _secret_name(name: str) -> bool:
    """A known secret field (or the token list); an unknown key only if it sounds like one."""
    if name in SECRET_FIELD_NAMES:
        return True
    return name not in PLAIN_FIELD_NAMES and bool(SECRETISH.search(name))


# ---- effective configuration -------------------------------------------------------------------
# In infrastructure/settings/effective.py; re-exported here.
from infrastructure.settings.effective import config_hash, effective_config, flatten_config  # noqa: E402, F401
