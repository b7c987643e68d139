"""The composition root: the only place that picks concrete adapters."""

from __future__ import annotations

from application.errors import StoreUnavailable
from application.trading_app import TradingApplication
from infrastructure.eventstore.mapper import EventMapper
from infrastructure.eventstore.store import StoreURLError, eventsourcing_env, parse_store_url, store_setup_lock

DEFAULT_STORE_URL = "sqlite:///var/events.db"


def open_store(url: str = DEFAULT_STORE_URL, batch_size: int = 1000) -> TradingApplication:
    """Open (creating if needed) the event store at URL as the trading application."""
    location = parse_store_url(url)
    try:
        with store_setup_lock(location):
            env = eventsourcing_env(location, TradingApplication.name)
            return TradingApplication(env=env, mapper=EventMapper(), batch_size=batch_size)
    except StoreURLError:
        raise
    except Exception as exc:  # connection refused, bad credentials, unreadable file
        raise StoreUnavailable(f"cannot open the event store {location.redacted()}: {exc}") from exc
