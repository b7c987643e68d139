"""Settings: env names from the operations manual, TOML, precedence, all errors at once, no secret leaks."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from api.cli.config import config_app
from infrastructure.settings.loading import (
    ConfigurationError,
    config_hash,
    effective_config,
    flatten_config,
    load_settings,
    settings_errors,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-live-DO-NOT-PRINT-0123456789"


def by_path(errors):
    return {e.path: e for e in errors}


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradecore.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- loading -----------------------------------------------------------------------------------


def test_defaults_with_empty_env_match_the_documented_values():
    s = load_settings(env={})
    t = s.trading
    assert (t.product, t.granularity, t.mode, t.strategy) == ("BTC-USD", "1h", "backtest", "rules")
    assert s.trading.initial_balance == Decimal("10000") and isinstance(s.trading.initial_balance, Decimal)
    assert s.risk.max_position_size_pct == Decimal("25")
    assert s.risk.max_daily_loss_pct == Decimal("3")
    assert s.risk.require_stop_loss is True
    assert s.llm.model == "gpt-4o-mini" and s.llm.max_tokens == 800 and s.llm.api_key is None
    assert (s.exchange.taker_fee_bps, s.exchange.maker_fee_bps) == (Decimal(60), Decimal(40))
    assert s.paper.fill_volume_fraction == Decimal("0.1")
    assert s.system.dry_run is True and s.system.api_port == 8080 and s.system.api_tokens == []
    assert s.eventstore.url == "sqlite:///var/events.db"
    assert s.eventstore.backend == "sqlite" and s.eventstore.sqlite_path == Path("var/events.db")
    assert s.readmodel.path == Path("var/readmodel.duckdb")
    assert (s.backup.keep_daily, s.backup.keep_weekly, s.backup.keep_monthly) == (30, 12, 12)


def test_operations_manual_env_names_are_read():
    env = {
        "SYSTEM__LOG_LEVEL": "DEBUG",
        "SYSTEM__UPDATE_FREQUENCY_SECONDS": "60.0",
        "DATA__CANDLE_LIMIT": "300",
        "DATA__INDICATOR_WARMUP": "60",
        "LLM__MAX_TOKENS": "900",
        "LLM__REQUEST_TIMEOUT": "20",
        "LLM__ENABLE_CACHING": "false",
        "LLM__CACHE_TTL_SECONDS": "300",
        "RISK__MAX_DAILY_LOSS_PCT": "2.5",
        "EVENTSTORE__URL": "postgresql://bot@db:5432/tradecore",
    }
    s = load_settings(env=env)
    assert s.system.log_level == "DEBUG" and s.system.update_frequency_seconds == 60.0
    assert (s.data.candle_limit, s.data.indicator_warmup) == (300, 60)
    llm = s.llm
    assert (llm.max_tokens, llm.request_timeout, llm.enable_caching, llm.cache_ttl_seconds) == (900, 20, False, 300)
    assert s.risk.max_daily_loss_pct == Decimal("2.5")
    assert s.eventstore.backend == "postgres" and s.eventstore.sqlite_path is None


def test_env_names_and_enum_values_are_case_insensitive():
    s = load_settings(env={"system__log_level": "debug", "Trading__Product": "eth-usd"})
    assert s.system.log_level == "DEBUG"
    assert s.trading.product == "ETH-USD"


def test_explicit_env_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("RISK__MAX_DAILY_LOSS_PCT", "7")
    assert load_settings(env={}).risk.max_daily_loss_pct == Decimal("3")
    assert load_settings().risk.max_daily_loss_pct == Decimal("7")


def test_no_dotenv_file_is_read_implicitly(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("RISK__MAX_DAILY_LOSS_PCT=9\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RISK__MAX_DAILY_LOSS_PCT", raising=False)
    assert load_settings().risk.max_daily_loss_pct == Decimal("3")


def test_bare_section_variable_from_the_host_is_ignored():
    assert load_settings(env={"DATA": "/srv/data", "SYSTEM": "Linux"}).data.candle_limit == 200


def test_empty_env_value_counts_as_unset():
    assert load_settings(env={"LLM__API_KEY": "", "LLM__BASE_URL": ""}).llm.api_key is None


def test_toml_file_loads_with_exact_decimals(tmp_path):
    path = write_toml(
        tmp_path,
        """
[trading]
product = "ETH-USD"
granularity = "15m"
mode = "paper"

[risk]
max_daily_loss_pct = 2.2
max_position_size_pct = 10

[paper]
fill_volume_fraction = 0.05

[llm]
temperature = 0.3

[[system.api_tokens]]
name = "ops"
token = "operator-token-1"
role = "operator"
""",
    )
    s = load_settings(config_file=path, env={})
    assert (s.trading.product, s.trading.granularity, s.trading.mode) == ("ETH-USD", "15m", "paper")
    assert s.trading.granularity_seconds == 900
    assert s.risk.max_daily_loss_pct == Decimal("2.2")
    assert s.paper.fill_volume_fraction == Decimal("0.05")
    assert s.llm.temperature == pytest.approx(0.3)
    assert s.system.api_tokens[0].role == "operator"
    assert s.system.api_tokens[0].token.get_secret_value() == "operator-token-1"


def test_precedence_is_overrides_then_env_then_file_then_defaults(tmp_path):
    path = write_toml(
        tmp_path,
        '[eventstore]\nurl = "sqlite:///file.db"\nbatch_size = 10\n'
        "[risk]\nmax_daily_loss_pct = 1\nmax_position_size_pct = 5\n",
    )
    env = {"EVENTSTORE__URL": "sqlite:///env.db", "RISK__MAX_DAILY_LOSS_PCT": "2"}
    s = load_settings(config_file=path, env=env, overrides={"eventstore.url": "sqlite:///flag.db"})
    assert s.eventstore.url == "sqlite:///flag.db"  # override beats env and file
    assert s.eventstore.batch_size == 10  # file value kept beside the overridden key
    assert s.risk.max_daily_loss_pct == Decimal("2")  # env beats file
    assert s.risk.max_position_size_pct == Decimal("5")  # file beats default
    assert s.risk.max_concurrent_positions == 1  # default


def test_overrides_may_be_nested_or_dotted_and_none_is_skipped():
    overrides = {"eventstore.url": None, "trading": {"mode": "paper"}}
    s = load_settings(env={"EVENTSTORE__URL": "sqlite:///env.db"}, overrides=overrides)
    assert s.eventstore.url == "sqlite:///env.db"
    assert s.trading.mode == "paper"


def test_postgres_alias_is_normalised():
    assert load_settings(env={"EVENTSTORE__URL": "postgres://bot@db/tc"}).eventstore.url == "postgresql://bot@db/tc"


def test_api_tokens_come_from_env_json():
    tokens = [{"name": "grafana", "token": "viewer-token-123", "role": "viewer"}]
    s = load_settings(env={"SYSTEM__API_TOKENS": json.dumps(tokens)})
    assert [(t.name, t.role) for t in s.system.api_tokens] == [("grafana", "viewer")]


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(ValidationError):
        s.risk.max_daily_loss_pct = Decimal(50)  # type: ignore[misc]


# ---- errors ------------------------------------------------------------------------------------


def test_every_bad_field_is_listed_at_once():
    env = {"RISK__MAX_DAILY_LOSS_PCT": "-1", "LLM__MAX_TOKENS": "abc", "TRADING__GRANULARITY": "3h"}
    errors = by_path(settings_errors(env=env))
    assert set(errors) == {"risk.max_daily_loss_pct", "llm.max_tokens", "trading.granularity"}
    assert errors["risk.max_daily_loss_pct"].value == "-1"
    assert "greater than 0" in errors["risk.max_daily_loss_pct"].reason
    assert errors["risk.max_daily_loss_pct"].source == "environment RISK__MAX_DAILY_LOSS_PCT"
    assert errors["llm.max_tokens"].value == "abc"
    with pytest.raises(ConfigurationError) as raised:
        load_settings(env=env)
    assert {e.path for e in raised.value.errors} == set(errors)
    assert "risk.max_daily_loss_pct" in str(raised.value) and "llm.max_tokens" in str(raised.value)


def test_valid_configuration_has_no_errors():
    assert settings_errors(env={}) == []


def test_bad_store_url_is_named_with_the_accepted_forms():
    errors = by_path(settings_errors(env={"EVENTSTORE__URL": "mysql://bot:hunter2@db/tc"}))
    error = errors["eventstore.url"]
    assert "sqlite:///" in error.reason and "postgresql://" in error.reason
    assert "hunter2" not in (error.value or "")  # a password in the URL is masked


def test_unknown_toml_key_and_section_are_named(tmp_path):
    path = write_toml(tmp_path, "[risk]\nmax_daily_los_pct = 3\n[riks]\nmax_daily_loss_pct = 3\n")
    errors = by_path(settings_errors(config_file=path, env={}))
    assert "unknown setting" in errors["risk.max_daily_los_pct"].reason
    assert "unknown section" in errors["riks"].reason
    assert errors["riks"].source.startswith("config file")


def test_unknown_env_key_in_a_section_is_named():
    errors = by_path(settings_errors(env={"RISK__MAX_DAILY_LOS_PCT": "3"}))
    assert "risk.max_daily_los_pct" in errors


def test_toml_syntax_error_is_reported_with_env_errors(tmp_path):
    path = write_toml(tmp_path, "[risk\nmax_daily_loss_pct = 3\n")
    errors = by_path(settings_errors(config_file=path, env={"LLM__MAX_TOKENS": "0"}))
    assert "not valid TOML" in errors["config_file"].reason
    assert "llm.max_tokens" in errors


def test_missing_config_file_is_an_error(tmp_path):
    errors = settings_errors(config_file=tmp_path / "absent.toml", env={})
    assert [(e.path, e.reason) for e in errors] == [("config_file", "config file not found")]
    with pytest.raises(ConfigurationError):
        load_settings(config_file=tmp_path / "absent.toml", env={})


def test_secret_values_are_masked_in_errors():
    env = {
        "SYSTEM__API_TOKENS": json.dumps(
            [{"name": "a", "token": "short"}, {"name": "b", "token": SECRET, "role": "boss"}]
        ),
        "SYSTEM__ALERT_WEBHOOK_URL": "ftp://" + SECRET,
        "EXCHANGE__API_KEYY": SECRET,
    }
    errors = settings_errors(env=env)
    paths = {e.path for e in errors}
    assert {"system.api_tokens[0].token", "system.api_tokens[0].role", "system.api_tokens[1].role"} <= paths
    assert {"system.alert_webhook_url", "exchange.api_keyy"} <= paths
    assert not any(SECRET in str(e) or "short" in (e.value or "") for e in errors)


def test_bad_json_in_api_tokens_names_the_field_without_echoing_it():
    errors = by_path(settings_errors(env={"SYSTEM__API_TOKENS": '[{"token": "' + SECRET}))
    assert errors["system.api_tokens"].value == "****"


def test_cross_section_rules_name_the_offending_setting():
    env = {"TRADING__LEVERAGE": "3", "TRADING__MODE": "live", "SYSTEM__DRY_RUN": "false"}
    errors = by_path(settings_errors(env=env))
    assert "risk.max_leverage" in errors["trading.leverage"].reason
    assert {"exchange.api_key", "exchange.api_secret"} <= set(errors)


def test_out_of_bounds_values_are_rejected():
    env = {
        "RISK__MAX_POSITION_SIZE_PCT": "101",
        "PAPER__FILL_VOLUME_FRACTION": "1.5",
        "SYSTEM__API_PORT": "70000",
        "BACKUP__FORMAT": "csv",
        "TRADING__PRODUCT": "bitcoin",
    }
    assert set(by_path(settings_errors(env=env))) == {
        "risk.max_position_size_pct",
        "paper.fill_volume_fraction",
        "system.api_port",
        "backup.format",
        "trading.product",
    }


# ---- effective configuration -------------------------------------------------------------------


def secret_env() -> dict[str, str]:
    return {
        "LLM__API_KEY": SECRET,
        "EXCHANGE__API_SECRET": SECRET + "-x",
        "SYSTEM__ALERT_WEBHOOK_URL": "https://hooks.example/" + SECRET,
        "SYSTEM__API_TOKENS": json.dumps([{"name": "ops", "token": SECRET + "-t", "role": "operator"}]),
        "EVENTSTORE__URL": "postgresql://bot:" + SECRET + "@db:5432/tc",
    }


def test_effective_config_never_holds_a_secret():
    config = effective_config(load_settings(env=secret_env()))
    text = json.dumps(config)
    assert SECRET not in text
    assert config["llm"]["api_key"] == {"set": True, "fingerprint": hashlib.sha256(SECRET.encode()).hexdigest()[:12]}
    assert config["exchange"]["api_key"] == {"set": False, "fingerprint": None}
    assert config["system"]["api_tokens"][0]["token"]["set"] is True
    assert config["eventstore"]["url"] == "postgresql://bot:****@db:5432/tc"
    assert config["risk"]["max_daily_loss_pct"] == "3"


def test_config_hash_is_stable_and_follows_values(tmp_path):
    base = config_hash(load_settings(env={}))
    assert base == config_hash(load_settings(env={}))
    assert len(base) == 64
    assert config_hash(load_settings(env={"RISK__MAX_DAILY_LOSS_PCT": "3.0"})) == base  # same value, same hash
    assert config_hash(load_settings(env={"RISK__MAX_DAILY_LOSS_PCT": "2"})) != base
    with_key = [config_hash(load_settings(env={"LLM__API_KEY": key})) for key in ("k1", "k2")]
    assert with_key[0] != with_key[1]


def test_flatten_config_gives_canonical_strings_per_dotted_path():
    flat = flatten_config(load_settings(env=secret_env()))
    assert flat["risk.max_daily_loss_pct"] == "3"
    assert flat["paper.fill_volume_fraction"] == "0.1"
    assert flat["risk.require_stop_loss"] == "true"
    assert flat["llm.api_key"] == "set:" + hashlib.sha256(SECRET.encode()).hexdigest()[:12]
    assert flat["exchange.api_key"] == "unset"
    assert flat["llm.base_url"] == "null"
    assert all(isinstance(v, str) for v in flat.values())
    assert not any(SECRET in v for v in flat.values())
    assert set(flat) >= {"trading.product", "eventstore.url", "backup.format", "system.api_tokens"}


# ---- CLI ---------------------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(config_app, name="config")
    return app


def run(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli(), args, env=env or {})


def test_validate_ok_exits_zero():
    result = run(["config", "validate"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output


def test_validate_lists_every_bad_field_and_exits_two():
    result = run(["config", "validate"], {"RISK__MAX_DAILY_LOSS_PCT": "-1", "LLM__MAX_TOKENS": "abc"})
    assert result.exit_code == 2
    assert "risk.max_daily_loss_pct" in result.output and "llm.max_tokens" in result.output
    assert "'abc'" in result.output and "'-1'" in result.output


def test_validate_names_unknown_toml_key_and_bad_store_url(tmp_path):
    path = write_toml(tmp_path, '[eventstore]\nurl = "mongodb://x"\n[risk]\ncolour = "red"\n')
    result = run(["config", "validate", "--config", str(path)])
    assert result.exit_code == 2
    assert "eventstore.url" in result.output and "risk.colour" in result.output


def test_show_masks_secrets_in_text_and_json():
    text = run(["config", "show"], secret_env())
    assert text.exit_code == 0, text.output
    assert SECRET not in text.output
    assert "llm.api_key" in text.output or "api_key = **** (set, fp=" in text.output
    assert "**** (set, fp=" + hashlib.sha256(SECRET.encode()).hexdigest()[:12] in text.output
    as_json = run(["config", "show", "--json"], secret_env())
    assert as_json.exit_code == 0
    assert SECRET not in as_json.output
    assert json.loads(as_json.output)["llm"]["api_key"]["set"] is True


def test_show_with_bad_config_exits_two():
    result = run(["config", "show"], {"EVENTSTORE__URL": "redis://x"})
    assert result.exit_code == 2


def test_show_reads_the_toml_file(tmp_path):
    path = write_toml(tmp_path, '[trading]\nproduct = "SOL-USD"\n')
    result = run(["config", "show", "--json", "--config", str(path)])
    assert json.loads(result.output)["trading"]["product"] == "SOL-USD"


# ---- docs --------------------------------------------------------------------------------------


def test_every_setting_is_documented():
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    env_names = [path.upper().replace(".", "__") for path in flatten_config(load_settings(env={}))]
    missing = [name for name in env_names if f"`{name}`" not in doc]
    assert missing == []


def test_indicator_warmup_below_what_the_indicators_need_is_refused_naming_the_minimum():
    from domain.indicators.params import IndicatorParams

    need = IndicatorParams().warmup_bars
    assert need == 59 and load_settings(env={}).data.indicator_warmup == need
    errors = settings_errors(env={"DATA__INDICATOR_WARMUP": str(need - 9)})
    assert [e.path for e in errors] == ["data.indicator_warmup"]
    assert f"at least {need}" in errors[0].reason


def test_settings_the_manual_names_but_nothing_reads_are_gone():
    for name in ("SYSTEM__PARALLEL_PROCESSING", "SYSTEM__MAX_WORKER_THREADS", "DATA__DATA_CACHE_TTL_SECONDS"):
        errors = settings_errors(env={name: "1"})
        assert errors and "unknown setting" in errors[0].reason, name


def test_alerting_email_needs_sender_and_recipients_and_summary_time_is_hh_mm():
    errors = settings_errors(env={"ALERTING__SMTP_HOST": "mail.example.com"})
    assert any("email_from" in e.reason for e in errors)
    ok = load_settings(env={"ALERTING__SMTP_HOST": "mail.example.com", "ALERTING__EMAIL_FROM": "bot@example.com",
                            "ALERTING__EMAIL_TO": "a@example.com, b@example.com", "ALERTING__DAILY_SUMMARY_AT": "7:05"})
    assert ok.alerting.email_to == ["a@example.com", "b@example.com"] and ok.alerting.daily_summary_at == "07:05"
    assert settings_errors(env={"ALERTING__DAILY_SUMMARY_AT": "25:00"})[0].path == "alerting.daily_summary_at"


def test_show_includes_changes_recorded_in_the_log_with_each_values_source(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    env = {"EVENTSTORE__URL": url, "RISK__MAX_POSITION_SIZE_PCT": "20"}
    recorded = run(["config", "set", "risk.max_daily_loss_pct", "4", "--reason", "wider for the ETH test"], env)
    assert recorded.exit_code == 0, recorded.output
    shown = json.loads(run(["config", "show", "--json"], env).output)
    assert shown["risk"]["max_daily_loss_pct"] == "4"
    sources = shown["sources"]
    assert sources["risk.max_daily_loss_pct"].startswith("recorded change by operator:")
    assert sources["risk.max_position_size_pct"] == "environment RISK__MAX_POSITION_SIZE_PCT"
    assert sources["risk.max_leverage"] == "default"
    other = tmp_path / "other.db"
    elsewhere = json.loads(run(["config", "show", "--json", "--store", f"sqlite:///{other}"], env).output)
    assert elsewhere["risk"]["max_daily_loss_pct"] == "3" and not other.exists()  # --store: that store; none created
    assert elsewhere["sources"]["eventstore.url"] == "command-line flag"
    text = run(["config", "show"], env).output
    assert "max_daily_loss_pct = 4  # recorded change by operator:" in text
