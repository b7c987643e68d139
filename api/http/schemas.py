"""Response and request bodies of the REST API, as the OpenAPI schema documents them.

Handlers render JSON themselves (cached, orjson); these models are the
contract: money and quantities are decimal strings, times ISO-8601 UTC.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Money = str
Time = str


class RunRef(BaseModel):
    """The run a view describes."""

    run_id: str
    mode: str
    product: str
    granularity: str | None = None
    strategy: str | None = None
    status: str | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    bot_id: str | None = None


class Position(BaseModel):
    product: str
    side: Literal["long", "short", "flat"]
    quantity: Money
    average_entry: Money | None
    entry_cost: Money | None
    mark_price: Money | None
    notional: Money | None
    unrealized_pnl: Money | None
    realized_pnl: Money | None
    fees: Money | None
    updated_at: Time | None


class PositionsPage(BaseModel):
    run: RunRef | None
    as_of_position: int
    items: list[Position]
    next_offset: int | None


class RiskMetrics(BaseModel):
    """Today's risk usage of a run against the configured limits."""

    run: RunRef | None
    as_of_position: int
    day: str | None
    equity: Money | None
    day_start_equity: Money | None
    end_equity: Money | None
    day_pnl: Money | None
    realized_pnl: Money | None
    fees: Money | None
    daily_loss_pct: Money | None
    worst_daily_loss_pct: Money | None
    max_daily_loss_pct: Money
    pct_of_limit_used: Money | None
    daily_loss_breached: bool
    exposure: Money | None
    exposure_pct: Money | None
    open_positions: int
    drawdown_pct: Money | None
    max_drawdown_pct: Money | None = Field(None, description="the day's max drawdown (from the day's running peak)")
    run_max_drawdown_pct: Money | None = Field(None, description="the run's max drawdown over its equity curve")
    peak_equity: Money | None
    risk_score: int | None
    risk_level: str | None
    refusals_today: dict[str, int]
    limits: dict[str, Any]
    max_drawdown_limit_pct: Money | None = Field(None, description="risk.max_drawdown_pct: the drawdown breaker's limit")
    drawdown_breaker: dict[str, str] | None = Field(None, description="when and why the drawdown breaker halted the run")


class PnlDay(BaseModel):
    """One UTC day of a run: the run book's day figures (domain/run_book.py), by the names every surface uses."""

    day: str
    day_start_equity: Money
    end_equity: Money
    day_pnl: Money
    realized_pnl: Money
    fees: Money
    daily_loss_pct: Money
    worst_daily_loss_pct: Money
    max_drawdown_pct: Money
    risk_score: int
    risk_level: str
    unrealized_pnl: Money
    net_pnl: Money
    equity: Money
    trades: int
    wins: int


class PnlPage(BaseModel):
    run: RunRef | None
    items: list[PnlDay]
    next_from: str | None


class Trade(BaseModel):
    notification_id: int
    fill_id: str
    order_id: str
    decision_id: str | None
    run_id: str
    product: str
    side: str
    quantity: Money
    price: Money
    notional: Money
    fee: Money
    fee_currency: str | None
    liquidity: str | None
    occurred_at: Time


class TradesPage(BaseModel):
    run: RunRef | None
    items: list[Trade]
    next_before: int | None


class Order(BaseModel):
    order_id: str
    run_id: str
    decision_id: str | None
    client_order_id: str | None
    product: str
    side: str
    type: str
    time_in_force: str | None
    status: str
    quantity: Money
    filled_quantity: Money | None
    average_fill_price: Money | None
    limit_price: Money | None
    stop_loss_price: Money | None
    take_profit_price: Money | None
    fees: Money | None
    venue_order_id: str | None
    reason: str | None
    placed_at: Time | None
    updated_at: Time | None


class OrdersPage(BaseModel):
    run: RunRef | None
    items: list[Order]
    next_offset: int | None


class Decision(BaseModel):
    notification_id: int
    decision_id: str
    run_id: str | None
    occurred_at: Time
    candle_start: Time | None
    product: str | None
    strategy: str | None
    model: str | None
    action: str
    size_pct: Money | None
    take_profit_pct: Money | None
    stop_loss_pct: Money | None
    rationale: str | None
    failed: bool
    failure_kind: str | None
    failure_detail: str | None
    latency_ms: Money | None
    cost: Money | None
    risk_approved: bool | None
    risk_rule: str | None
    risk_message: str | None


class DecisionsPage(BaseModel):
    run: RunRef | None
    items: list[Decision]
    next_before: int | None


class EquityPoint(BaseModel):
    notification_id: int
    at: Time
    equity: Money
    cash: Money
    close: Money
    position_quantity: Money
    drawdown_pct: Money


class EquityPage(BaseModel):
    run: RunRef | None
    items: list[EquityPoint]
    next_before: int | None


class RunsPage(BaseModel):
    items: list[RunRef]
    next_offset: int | None


class BotState(RunRef):
    """A bot (``trading.bot_id``): its latest paper/live run, and the halt in force (its own, else every bot's)."""

    bot_id: str
    runs: int
    halted: bool
    halted_by: Literal["bot", "all"] | None = None
    halt_reason: str | None = None
    halt_severity: str | None = None


class BotsPage(BaseModel):
    as_of_position: int
    items: list[BotState]


class Candle(BaseModel):
    notification_id: int
    product: str
    granularity: str
    start: Time
    open: Money
    high: Money
    low: Money
    close: Money
    volume: Money


class LoggedEventBody(BaseModel):
    notification_id: int
    type: str
    occurred_at: Time
    event_id: str
    stream_id: str
    version: int
    actor: str
    correlation_id: str | None
    causation_id: str | None
    run_id: str | None
    payload: dict[str, Any]


class EventsPage(BaseModel):
    """One page of the log; pass ``next_after`` as ``after`` for the next (null: the end was reached)."""

    items: list[LoggedEventBody]
    next_after: int | None
    scanned_to: int
    last_notification_id: int


class Incident(BaseModel):
    incident_id: str
    severity: str
    kind: str
    details: str | None
    status: str
    opened_at: Time | None
    opened_by: str | None
    resolved_at: Time | None
    resolved_by: str | None
    note: str | None
    run_id: str | None
    bot_id: str | None = None


class IncidentsPage(BaseModel):
    items: list[Incident]
    next_offset: int | None


class AlertsPage(BaseModel):
    """Rows of the read model's ``alerts`` table (check, episode, status, severity, value, threshold, times)."""

    items: list[dict[str, Any]]
    next_offset: int | None


# --- commands ------------------------------------------------------------------------------


class HaltRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why trading stops (recorded)")
    severity: Literal["P0", "P1", "P2", "P3"] = Field("P1", description="P0 also cancels every working order")
    bot: str | None = Field(None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$",
                            description="only this bot (GET /bots); unset: every bot")


class ReasonRequest(BaseModel):
    reason: str = Field("by operator (REST API)", min_length=1, max_length=500, description="recorded with the event")
    bot: str | None = Field(None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$",
                            description="only this bot (GET /bots); unset: every bot")


class IncidentRequest(BaseModel):
    severity: Literal["P0", "P1", "P2", "P3"]
    kind: str = Field(min_length=1, max_length=100)
    details: str = Field(min_length=1, max_length=2000)
    bot: str | None = Field(None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$",
                            description="only this bot (GET /bots); unset: every bot")


class ResolveRequest(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class ConfigChangeRequest(BaseModel):
    value: str = Field(max_length=10_000, description="the new value, validated like the environment's")
    reason: str = Field(min_length=1, max_length=500, description="why the setting changes (recorded)")


class ControlState(BaseModel):
    halted: bool
    reason: str | None
    severity: str | None
    since: Time | None
    by: str | None
    cancel_requests: int


class ControlAnswer(BaseModel):
    """What a control recorded, and the control state after it."""

    recorded: str
    actor: str
    cancel_requested: bool
    state: ControlState


class IncidentAnswer(BaseModel):
    incident_id: str
    severity: str
    halted: bool
    actor: str


class ConfigChangeAnswer(BaseModel):
    path: str
    old: str | None
    new: str | None
    recorded: bool
    actor: str
    config_hash: str
