"""The sections of tradecore's settings: one validated, frozen model per concern.

Each section is what one part of the bot needs to know (trading, risk, LLM, exchange, ...),
with bounds that reject values a typo would produce ("corrupt data is worse than no data").
Money and percentages are ``Decimal``; credentials are ``SecretStr`` so they never print.
``infrastructure/settings/loading.py`` assembles the sections and loads them.
"""

from __future__ import annotations

import hashlib
import re
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator

from domain.control import default_bot_id
from domain.market import GRANULARITIES
from infrastructure.settings.base import LogLevel, Section, _percent  # noqa: F401 - LogLevel re-exported

# One table of bar sizes: the domain's. These are views of it for settings.
GRANULARITY_SECONDS: dict[str, int] = {name: int(step.total_seconds()) for name, step in GRANULARITIES.items()}
Granularity = Literal[tuple(GRANULARITIES)]  # type: ignore[valid-type]  # the names of domain.market.GRANULARITIES

def _indicator_warmup_min() -> int:
    from domain.indicators.params import IndicatorParams

    return IndicatorParams().warmup_bars


INDICATOR_WARMUP_MIN = _indicator_warmup_min()
"""Candles the indicators need before every column is valid (59 with the default parameters)."""

_PRODUCT = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}$")
_BOT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")


class TradingSection(Section):
    """What is traded, how often, by which strategy, in which mode."""

    product: str = Field("BTC-USD", description="Coinbase product id, BASE-QUOTE")
    granularity: Granularity = Field("1h", description="candle size the strategy decides on")
    strategy: Literal["rules", "llm"] = Field("rules", description="decision model")
    mode: Literal["backtest", "paper", "live"] = Field("backtest", description="where orders go")
    initial_balance: Decimal = Field(
        Decimal(10000), gt=0, le=Decimal(10) ** 12, description="quote-currency funds for backtest/paper"
    )
    allow_shorts: bool = Field(False, description="whether SHORT decisions may open positions")
    leverage: Decimal = Field(Decimal(1), ge=1, le=100, description="leverage applied to position notional")
    bot_id: str | None = Field(None, description="the bot this process trades as (runs, controls, alerts, orders); unset: <mode>-<product> lower-case")

    @field_validator("bot_id")
    @classmethod
    def _bot_id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _BOT_ID.match(value):
            raise ValueError("must be 1-48 of a-z, 0-9 and '-', starting and ending with a letter or digit, e.g. paper-btc-usd")
        return value

    def bot_for(self, mode: str) -> str:
        """The bot id of a run in ``mode``: ``bot_id`` when set, else ``<mode>-<product>`` lower-case."""
        return self.bot_id or default_bot_id(mode, self.product)

    @field_validator("product", mode="before")
    @classmethod
    def _upper_product(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("product")
    @classmethod
    def _product_shape(cls, value: str) -> str:
        if not _PRODUCT.match(value):
            raise ValueError("must look like BASE-QUOTE, e.g. BTC-USD")
        return value

    @property
    def granularity_seconds(self) -> int:
        """The candle length in seconds."""
        return GRANULARITY_SECONDS[self.granularity]


class RiskSection(Section):
    """Limits the risk manager enforces before any order reaches an exchange."""

    max_position_size_pct: Decimal = _percent("25", "largest position, % of equity")
    max_daily_loss_pct: Decimal = _percent("3", "loss in one UTC day, % of start-of-day equity, that halts trading")
    max_concurrent_positions: int = Field(1, ge=1, le=100, description="open positions at once")
    require_stop_loss: bool = Field(True, description="reject entries without a stop loss")
    max_leverage: Decimal = Field(Decimal(1), ge=1, le=100, description="highest leverage risk approves")
    min_balance: Decimal = Field(Decimal(100), ge=0, description="quote balance below which new entries are refused")
    halt_cooldown_minutes: int = Field(60, ge=0, le=10080, description="minutes an automatic halt lasts")
    rapid_loss_pct: Decimal = _percent("5", "equity loss within the rapid-loss window that halts trading")
    rapid_loss_window_minutes: int = Field(60, ge=1, le=1440, description="window of the rapid-loss check")
    max_consecutive_losses: int = Field(5, ge=1, le=1000, description="losing trades in a row that halt trading")
    max_drawdown_pct: Decimal = _percent("20", "fall of equity from the run's peak, %, that flattens and halts trading (P0) until an operator resumes")
    default_stop_loss_pct: Decimal = _percent("2", "stop loss used when a decision gives none", le=50)
    default_take_profit_pct: Decimal = _percent("4", "take profit used when a decision gives none", le=1000)


class LlmPrice(Section):
    """One model's list price, USD per million tokens (``[llm.prices."MODEL"]``)."""

    input_per_million: Decimal = Field(ge=0, le=10000, description="USD per million prompt tokens")
    output_per_million: Decimal = Field(ge=0, le=10000, description="USD per million completion tokens")


def _default_llm_prices() -> dict[str, LlmPrice]:
    from infrastructure.llm.pricing import DEFAULT_PRICES

    return {name: LlmPrice(input_per_million=p.input_per_million, output_per_million=p.output_per_million)
            for name, p in DEFAULT_PRICES.items()}


class LlmSection(Section):
    """The language model that makes decisions when ``trading.strategy = "llm"``."""

    provider: Literal["openai"] = Field("openai", description="client library; any OpenAI-compatible server works")
    model: str = Field("gpt-4o-mini", min_length=1, description="model name")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; unset means api.openai.com")
    api_key: SecretStr | None = Field(None, description="API key")
    max_tokens: int = Field(800, ge=1, le=128000, description="completion token limit")
    temperature: float = Field(0.1, ge=0, le=2, description="sampling temperature")
    request_timeout: float = Field(20, gt=0, le=600, description="seconds per request")
    max_retries: int = Field(3, ge=0, le=10, description="retries on transient errors")
    enable_caching: bool = Field(True, description="reuse a decision for identical prompts")
    cache_ttl_seconds: int = Field(300, ge=0, le=86400, description="lifetime of a cached decision")
    prompt_template: Path | None = Field(None, description="prompt file; unset means the bundled one")
    candles_in_prompt: int = Field(24, ge=1, le=1000, description="recent candles shown to the model")
    prices: dict[str, LlmPrice] = Field(
        default_factory=_default_llm_prices,
        description="USD per million input/output tokens by model; a model without a price records cost as unknown",
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        # A table in the file or the environment adds or overrides models; the defaults stay.
        if isinstance(value, dict):
            return {**_default_llm_prices(), **value}
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class ExchangeSection(Section):
    """The venue: Coinbase Advanced Trade credentials, endpoints and fees."""

    name: Literal["coinbase"] = Field("coinbase", description="venue adapter")
    api_key: SecretStr | None = Field(None, description="CDP API key name")
    api_secret: SecretStr | None = Field(None, description="CDP API private key")
    base_url: str = Field("api.coinbase.com", min_length=1, description="REST host")
    ws_url: str = Field("wss://advanced-trade-ws.coinbase.com", description="WebSocket feed")
    taker_fee_bps: Decimal = Field(Decimal(60), ge=0, le=1000, description="taker fee, basis points")
    maker_fee_bps: Decimal = Field(Decimal(40), ge=0, le=1000, description="maker fee, basis points")
    request_timeout: float = Field(10, gt=0, le=120, description="seconds per REST request")
    ca_bundle: Path | None = Field(None, description="CA file to trust for the REST host (a local stand-in); unset: system CAs")
    max_attempts: int = Field(4, ge=1, le=20, description="attempts per REST call on 5xx, 429 and timeouts")
    retry_wait_seconds: float = Field(0.5, gt=0, le=60, description="first wait between attempts (doubles each time)")
    fill_wait_seconds: float = Field(2.0, ge=0, le=60, description="seconds a market order's fills are awaited after sending it")
    ws_stale_seconds: float = Field(10.0, gt=0, le=600, description="a candles feed quiet this long is reconnected")

    @field_validator("base_url")
    @classmethod
    def _host_only(cls, value: str) -> str:
        value = value.strip().removeprefix("https://").rstrip("/")
        if "/" in value or "://" in value:
            raise ValueError("must be a host[:port] (the SDK always speaks https://HOST/api/v3/...)")
        return value

    @field_validator("ws_url")
    @classmethod
    def _ws_scheme(cls, value: str) -> str:
        if not value.startswith(("wss://", "ws://")):
            raise ValueError("must start with wss:// (or ws:// for a local stub)")
        return value


class ProductSettings(Section):
    """A product's spec when the venue cannot be asked (``[products."XLM-USD"]``), in its own currencies."""

    quote_increment: Decimal = Field(gt=0, description="price step in the quote currency, e.g. 0.000001")
    base_increment: Decimal = Field(gt=0, description="size step in the base currency, e.g. 0.00000001")
    min_base_size: Decimal = Field(Decimal(0), ge=0, description="smallest order size, base currency")
    min_quote_funds: Decimal = Field(Decimal(0), ge=0, description="smallest order value, quote currency")
    min_balance: Decimal | None = Field(None, ge=0, description="quote balance below which new entries are refused, "
                                        "in this product's quote currency (instead of risk.min_balance)")


def _product_keys(tables: dict[str, ProductSettings]) -> dict[str, ProductSettings]:
    bad = [name for name in tables if not _PRODUCT.match(name)]
    if bad:
        raise ValueError(f"product table names must look like BASE-QUOTE in upper case, e.g. XLM-USD (not {', '.join(map(repr, bad))})")
    return tables


ProductTables = typing.Annotated[dict[str, ProductSettings], AfterValidator(_product_keys)]
"""``[products."BASE-QUOTE"]`` tables: specs for products the venue cannot be asked about."""


class DataSection(Section):
    """Market data: how much history, how fresh, where from."""

    candle_limit: int = Field(200, ge=1, le=10000, description="candles loaded per product")
    indicator_warmup: int = Field(
        INDICATOR_WARMUP_MIN, ge=0, le=5000, description="candles before indicators are trusted (at least what they need)"
    )

    @field_validator("indicator_warmup")
    @classmethod
    def _enough_for_the_indicators(cls, value: int) -> int:
        if value < INDICATOR_WARMUP_MIN:
            raise ValueError(
                f"must be at least {INDICATOR_WARMUP_MIN}: the indicators' longest lookback "
                f"(domain/indicators/params.py warmup_bars); fewer candles would trust half-formed values"
            )
        return value


class PaperSection(Section):
    """How the paper exchange simulates fills."""

    slippage_bps: Decimal = Field(Decimal(5), ge=0, le=1000, description="adverse price move on market fills, bps")
    fill_volume_fraction: Decimal = Field(
        Decimal("0.1"), gt=0, le=1, description="share of a candle's volume one order may fill"
    )


# [system], [monitoring] and [alerting]: infrastructure/settings/operations.py (imported above).


class EventStoreSection(Section):
    """Where the append-only event log lives: one SQLite file or PostgreSQL."""

    url: str = Field("sqlite:///var/events.db", description="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    batch_size: int = Field(1000, ge=1, le=100000, description="notifications read per batch")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://"):]
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.startswith("postgresql://") and len(value) > len("postgresql://"):
            return value
        raise ValueError(
            "event store URL must be sqlite:///PATH (e.g. sqlite:///var/events.db) "
            "or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (postgres:// is accepted)"
        )

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        """Which event store adapter the URL selects."""
        return "sqlite" if self.url.startswith("sqlite:") else "postgres"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (relative to the working directory unless absolute), or None for PostgreSQL."""
        return Path(self.url[len("sqlite:///"):]) if self.backend == "sqlite" else None


class ReadModelSection(Section):
    """The DuckDB read model the projector owns."""

    path: Path = Field(Path("var/readmodel.duckdb"), description="DuckDB file")
    batch_size: int = Field(50000, ge=1, le=1_000_000, description="events applied per DuckDB transaction")


class BackupSection(Section):
    """Where backups go and how many of each kind are kept."""

    dest: str = Field("var/backups", min_length=1, description="directory, or s3://bucket/prefix")
    keep_daily: int = Field(30, ge=0, le=3650, description="daily backups kept")
    keep_weekly: int = Field(12, ge=0, le=520, description="weekly backups kept")
    keep_monthly: int = Field(12, ge=0, le=1200, description="monthly backups kept")
    format: Literal["parquet", "jsonl"] = Field("parquet", description="file format of exported events")

    @field_validator("dest")
    @classmethod
    def _known_destination(cls, value: str) -> str:
        if value.startswith("s3://"):
            if not value[len("s3://"):].split("/", 1)[0]:
                raise ValueError("an S3 destination needs a bucket: s3://BUCKET[/prefix]")
            return value
        if "://" in value:
            raise ValueError(f"unknown scheme {value.split('://', 1)[0]!r}: use a directory or s3://bucket/prefix")
        return value


class AuditSection(Section):
    """Tamper evidence kept outside the store: signed anchors of the chain head."""

    anchor_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key that signs anchors (never stored in the log or printed); unset: no anchors"
    )
    anchor_retention_days: int = Field(
        365, ge=1, le=36500, description="Object Lock retention of anchors written to S3, when the bucket has no default rule"
    )
    anchor_dir: str = Field(
        "var/anchors", min_length=1, description="where `tradecore run` writes an anchor when it ends: a folder or s3://bucket/prefix"
    )


from infrastructure.settings.operations import (  # noqa: E402, F401 - re-exported
    AlertingSection,
    ApiToken,
    MonitoringSection,
    SystemSection,
)

SECTIONS: dict[str, type[Section]] = {
    "trading": TradingSection,
    "risk": RiskSection,
    "llm": LlmSection,
    "exchange": ExchangeSection,
    "data": DataSection,
    "paper": PaperSection,
    "system": SystemSection,
    "monitoring": MonitoringSection,
    "alerting": AlertingSection,
    "eventstore": EventStoreSection,
    "readmodel": ReadModelSection,
    "backup": BackupSection,
    "audit": AuditSection,
}


def cross_section_problems(settings: Any) -> list[tuple[str, Any, str]]:
    """(path, value, reason) for each rule that spans sections; empty when consistent."""
    s = settings
    limit = s.data.candle_limit
    problems: list[tuple[str, Any, str]] = []
    if s.trading.leverage > s.risk.max_leverage:
        problems.append(("trading.leverage", s.trading.leverage, f"exceeds risk.max_leverage ({s.risk.max_leverage})"))
    if s.data.indicator_warmup >= limit:
        warmup = s.data.indicator_warmup
        problems.append(("data.indicator_warmup", warmup, f"must be below data.candle_limit ({limit})"))
    if s.llm.candles_in_prompt > limit:
        problems.append(("llm.candles_in_prompt", s.llm.candles_in_prompt, f"exceeds data.candle_limit ({limit})"))
    if s.trading.mode == "live" and not s.system.dry_run:
        for name in ("api_key", "api_secret"):
            if getattr(s.exchange, name) is None:
                problems.append((f"exchange.{name}", None, "required for live trading with system.dry_run = false"))
    return problems


def secret_fingerprint(secret: SecretStr) -> str:
    """First 12 hex digits of sha256(secret): tells two secrets apart without revealing either."""
    return hashlib.sha256(secret.get_secret_value().encode("utf-8")).hexdigest()[:12]


def is_secret_field(model: type[BaseModel], name: str) -> bool:
    """Whether the field holds a SecretStr (possibly optional)."""
    annotation = model.model_fields[name].annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _field_names(model: type[BaseModel], secret: bool) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        for sub in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                names |= _field_names(sub, secret)
            for inner in typing.get_args(sub):  # list[ApiToken]
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _field_names(inner, secret)
        if is_secret_field(model, name) == secret:
            names.add(name)
    return names


# Field names that hold secrets anywhere in the settings (the token list counts as one), and the rest.
SECRET_FIELD_NAMES: frozenset[str] = frozenset(
    {"api_tokens"}.union(*(_field_names(m, secret=True) for m in SECTIONS.values()))
)
PLAIN_FIELD_NAMES: frozenset[str] = frozenset(
    set(SECTIONS).union(*(_field_names(m, secret=False) for m in SECTIONS.values())) - SECRET_FIELD_NAMES
)
