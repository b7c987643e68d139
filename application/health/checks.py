"""The health checks of the operations manual: each one's name, unit, alert severity and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from domain.control import Severity

__all__ = ["CHECKS", "CHECKS_BY_NAME", "DEGRADES_ONLY", "CheckSpec"]


@dataclass(frozen=True)
class CheckSpec:
    """What a check is: its name, unit, the severity its alert carries, and what to do about it."""

    name: str
    title: str
    unit: str
    severity: Severity
    action: str
    warn_severity: Severity | None = None  # set when being past the target already pages someone
    target_name: str = "target"
    states: tuple[str, str] | None = None  # a yes/no check: what 0 and 1 mean


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("memory", "Process memory", " MB", Severity.P2,
              "look for a leak (memory keeps growing between checks); restart the bot in a quiet moment."),
    CheckSpec("system_memory", "Machine memory", "%", Severity.P2,
              "find what else uses memory on the host; the bot is killed when the machine runs out."),
    CheckSpec("cpu", "CPU usage", "%", Severity.P2,
              "check for a runaway process or an oversized backtest sharing the machine."),
    CheckSpec("disk", "Disk usage", "%", Severity.P1,
              "free space now: a full disk stops the event store, and with it trading. Rotate logs, move backups."),
    CheckSpec("api_error_rate", "Exchange API error rate", "%", Severity.P1,
              "check the venue's status page, the API key's permissions and rate limits; consider halting."),
    CheckSpec("api_response_time", "Exchange API p95 response time", " ms", Severity.P2,
              "check network latency to the venue and its status page; slow fills cost slippage."),
    CheckSpec("market_data_age", "Market data age", " s", Severity.P1,
              "the bot is deciding on stale prices: check the feed; halt trading if it does not recover."),
    CheckSpec("llm_response_rate", "LLM response rate", "%", Severity.P1,
              "failed decisions fall back to HOLD: check the LLM provider, key, quota and timeouts."),
    CheckSpec("daily_loss", "Daily loss", "%", Severity.P0,
              "review open positions and today's fills; at the limit the risk manager halts new entries.",
              warn_severity=Severity.P1, target_name="warning level"),
    CheckSpec("trading_halted", "Trading halt", "", Severity.P1,
              "read the halt's reason (tradecore events --type TradingHalted); once the cause is understood, "
              "tradecore resume --reason '...'.", states=("trading is running", "trading is halted")),
)
CHECKS_BY_NAME: dict[str, CheckSpec] = {c.name: c for c in CHECKS}
DEGRADES_ONLY = frozenset({"trading_halted"})
"""Checks whose failure pages (their severity) but leaves the bot degraded, never unhealthy."""
