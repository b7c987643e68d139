"""The sections that say how tradecore is operated: the process ([system]: logging, pace, REST API),
the health thresholds ([monitoring]) and where notifications go ([alerting]).

Split from sections.py along that concept; ``infrastructure.settings.sections`` re-exports them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from infrastructure.settings.base import LogLevel, Section, _percent


class ApiToken(Section):
    """One bearer token of the REST API and what it may do."""

    name: str = Field(min_length=1, max_length=64, description="who holds the token (appears as actor)")
    token: SecretStr = Field(description="the bearer token")
    role: Literal["viewer", "auditor", "operator"] = Field(
        description="viewer reads, auditor also audits, operator also controls"
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("token must be at least 8 characters")
        return value


class SystemSection(Section):
    """Process-wide behaviour: logging, loop pace, the REST API, alerts."""

    log_level: LogLevel = Field("INFO", description="root log level")
    log_file: str | None = Field(
        None, min_length=1,
        description="JSON-lines log file; unset: var/logs/tradecore.log for run/serve, stderr for other commands; - : stderr",
    )
    log_max_mb: int = Field(10, ge=1, le=10240, description="size at which the log file is rotated, MB")
    log_retention_days: int = Field(7, ge=1, le=3650, description="days rotated log files are kept")
    dry_run: bool = Field(True, description="in live mode, decide and record but send no orders")
    update_frequency_seconds: float = Field(60, gt=0, le=86400, description="seconds between trading-loop ticks")
    api_host: str = Field("127.0.0.1", min_length=1, description="REST API bind address")
    api_port: int = Field(8080, ge=1, le=65535, description="REST API port")
    api_tokens: list[ApiToken] = Field(default_factory=list, description="REST API bearer tokens (env: JSON list)")
    api_open_endpoints: list[Literal["/health", "/health/detailed", "/metrics"]] = Field(
        default_factory=lambda: ["/health", "/metrics"],
        description="REST endpoints that answer without a bearer token (env: JSON list; [] closes them all)",
    )
    alert_webhook_url: SecretStr | None = Field(None, description="Slack-style webhook for alerts")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("api_tokens")
    @classmethod
    def _unique_names(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        names = [t.name for t in tokens]
        if len(names) != len(set(names)):
            raise ValueError("token names must be unique")
        if len({t.token.get_secret_value() for t in tokens}) != len(tokens):
            raise ValueError("two tokens share the same secret")
        return tokens

    @field_validator("alert_webhook_url")
    @classmethod
    def _https_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class MonitoringSection(Section):
    """Alert thresholds from the operations manual's "key metrics to monitor"."""

    memory_alert_mb: int = Field(1500, ge=64, description="process memory that raises an alert")
    cpu_alert_pct: Decimal = _percent("80", "CPU usage that raises an alert")
    disk_alert_pct: Decimal = _percent("90", "disk usage that raises an alert")
    api_error_rate_alert_pct: Decimal = _percent("5", "exchange/LLM API error rate that raises an alert")
    api_response_alert_ms: int = Field(5000, ge=1, description="API response time that raises an alert")
    market_data_stale_seconds: int = Field(30, ge=1, description="market-data latency that raises an alert")
    llm_response_rate_min_pct: Decimal = _percent("90", "LLM success rate below which an alert is raised")
    trade_success_rate_min_pct: Decimal = _percent("40", "win rate below which an alert is raised")
    trade_success_rate_window: int = Field(
        20, ge=1, le=10000, description="closed trades the success rate is judged over (fewer: not judged)"
    )
    projector_lag_alert_seconds: int = Field(
        30, ge=1, le=86400, description="seconds the read model may trail the log before health is degraded"
    )
    # The manual's targets: past one a check is 'warn' (degraded, no page); an alert resolves only
    # once its check is back within target, so a value hovering at the alert level cannot flap.
    memory_target_mb: int = Field(1200, ge=32, description="process memory above target (warn)")
    system_memory_target_pct: Decimal = _percent("80", "machine memory use above target (warn)")
    system_memory_alert_pct: Decimal = _percent("90", "machine memory use that raises an alert")
    cpu_target_pct: Decimal = _percent("70", "CPU usage above target (warn)")
    disk_target_pct: Decimal = _percent("80", "disk usage above target (warn)")
    api_error_rate_target_pct: Decimal = _percent("1", "exchange API error rate above target (warn)")
    api_response_target_ms: int = Field(1000, ge=1, description="exchange API p95 response time above target (warn)")
    market_data_target_seconds: int = Field(5, ge=0, description="market-data latency above target (warn)")
    llm_response_rate_target_pct: Decimal = _percent("95", "LLM success rate below target (warn)")
    daily_loss_warn_pct_of_limit: Decimal = _percent(
        "80", "share of risk.max_daily_loss_pct used that raises a P1 alert (the limit itself raises P0)"
    )
    llm_window_minutes: int = Field(1440, ge=1, le=10080, description="window of the LLM response-rate check")
    llm_min_decisions: int = Field(5, ge=1, le=10000, description="decisions in the window before the LLM rate is judged")
    api_window_minutes: int = Field(15, ge=1, le=1440, description="window of the API error-rate and response-time checks")
    check_interval_seconds: float = Field(60, ge=1, le=86400, description="seconds between checks of the health watch")
    webhook_timeout_seconds: float = Field(10, gt=0, le=120, description="seconds per alert webhook request")
    webhook_retries: int = Field(3, ge=0, le=10, description="retries of a failed alert webhook request")

    @model_validator(mode="after")
    def _targets_inside_alerts(self) -> "MonitoringSection":
        pairs = [
            ("memory_target_mb", "memory_alert_mb", 1), ("system_memory_target_pct", "system_memory_alert_pct", 1),
            ("cpu_target_pct", "cpu_alert_pct", 1), ("disk_target_pct", "disk_alert_pct", 1),
            ("api_error_rate_target_pct", "api_error_rate_alert_pct", 1),
            ("api_response_target_ms", "api_response_alert_ms", 1),
            ("market_data_target_seconds", "market_data_stale_seconds", 1),
            ("llm_response_rate_target_pct", "llm_response_rate_min_pct", -1),
        ]
        for target, alert, sign in pairs:
            if (getattr(self, target) - getattr(self, alert)) * sign > 0:
                word = "above" if sign > 0 else "below"
                raise ValueError(f"{target} ({getattr(self, target)}) is {word} {alert} ({getattr(self, alert)})")
        return self


class AlertingSection(Section):
    """Where notifications go besides the webhook (``system.alert_webhook_url``): email, and the daily summary."""

    smtp_host: str | None = Field(None, min_length=1, description="SMTP server for alert email; unset: no email")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission with STARTTLS)")
    smtp_user: str | None = Field(None, min_length=1, description="SMTP login; unset: no login")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS before logging in")
    smtp_timeout_seconds: float = Field(10, gt=0, le=120, description="seconds per SMTP conversation")
    email_from: str | None = Field(None, min_length=3, description="sender address of alert email")
    email_to: list[str] = Field(default_factory=list, description="recipients of P0/P1 alert email (env: JSON list)")
    daily_summary_at: str | None = Field(
        None, description="UTC time HH:MM the day's trading summary is posted to the webhook; unset: none"
    )
    delivery_attempts: int = Field(4, ge=1, le=20, description="attempts per notification before it is recorded as failed")
    retry_wait_seconds: float = Field(1.0, gt=0, le=600, description="first wait between attempts (doubles each time)")

    @field_validator("email_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if "@" not in a]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value

    @field_validator("daily_summary_at")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if not match:
            raise ValueError("must be a UTC time HH:MM, e.g. 18:00")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @model_validator(mode="after")
    def _complete_email(self) -> "AlertingSection":
        if self.smtp_host and (not self.email_to or not self.email_from):
            raise ValueError("alerting.smtp_host is set: alerting.email_from and alerting.email_to are needed too")
        if self.smtp_password is not None and not self.smtp_user:
            raise ValueError("alerting.smtp_password is set without alerting.smtp_user")
        return self
