"""The REST side of Coinbase Advanced Trade: the SDK's RESTClient behind our errors and retries.

Every call returns plain dicts (``to_dict()``) or our types; SDK errors are
translated (errors.py) and the retryable ones retried with backoff. Order
creation is retried safely because the client_order_id is derived from our
order id: the venue answers a repeat with the order it already has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from coinbase.rest import RESTClient

from application.ports import VenueDataError, VenueRateLimited
from domain.market import Candle
from domain.product import ProductSpec
from infrastructure.monitoring.calls import CALLS
from infrastructure.venues.coinbase.errors import RetryPolicy, retrying, translate
from infrastructure.venues.coinbase.schemas import parse_candle, parse_product_spec, venue_granularity

MAX_CANDLES_PER_REQUEST = 350
"""Coinbase refuses candle requests spanning more than 350 buckets."""

_ERROR_KINDS = {"VenueRateLimited": "rate_limited", "VenueAuthError": "auth", "VenueClientError": "client",
                "VenueServerError": "server", "VenueUnavailable": "unavailable", "VenueDataError": "data"}

for _name in ("coinbase.RESTClient", "coinbase.WSClient"):
    # The SDK logs every HTTP error body itself at ERROR; we report translated errors instead.
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class CoinbaseClient:
    """Coinbase REST calls the bot makes, with retries; keys are optional (public candles need none)."""

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        base_url: str = "api.coinbase.com",
        timeout: float = 10,
        ca_bundle: str | Path | None = None,
        retry: RetryPolicy | None = None,
        meter: Any = None,
    ):
        host = base_url.removeprefix("https://").rstrip("/")  # the SDK wants a host[:port] only
        self.rest = RESTClient(api_key=api_key, api_secret=api_secret, base_url=host, timeout=timeout)
        if ca_bundle is not None:
            # REQUESTS_CA_BUNDLE in the environment would silently override session.verify.
            self.rest.session.trust_env = False
            self.rest.session.verify = str(ca_bundle)
        self.retry = retry or RetryPolicy()
        self.meter = meter  # records (ok, latency_ms) per request: the health check's API error rate and p95
        self.authenticated = bool(self.rest.is_authenticated)

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        fn = getattr(self.rest, method)
        attempts = [0]

        def attempt() -> Any:
            attempts[0] += 1
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self._measured(False, started)
                self._observed(method, what, started, attempts[0], exc)
                raise
            self._measured(True, started)
            self._observed(method, what, started, attempts[0], None)
            return result

        response = retrying(self.retry, what, attempt)
        return response.to_dict() if hasattr(response, "to_dict") else dict(response)

    def _observed(self, endpoint: str, what: str, started: float, attempt: int, exc: BaseException | None) -> None:
        # Prometheus figures and the log line of this attempt (infrastructure/monitoring/calls.py).
        seconds = time.perf_counter() - started
        if exc is None:
            CALLS.venue_call("coinbase", endpoint, seconds, attempt=attempt)
            return
        try:
            error = translate(exc, what)
        except Exception:  # noqa: BLE001 - not a venue error: re-raised by the caller as it is
            error = exc
        kind = _ERROR_KINDS.get(type(error).__name__, "error")
        wait = None
        if isinstance(error, VenueRateLimited) and attempt < self.retry.attempts:
            wait = min(error.retry_after if error.retry_after is not None else
                       self.retry.initial_wait * 2 ** (attempt - 1), self.retry.max_rate_limit_wait)
        CALLS.venue_call("coinbase", endpoint, seconds, attempt=attempt, error=error, error_kind=kind,
                         rate_limit_wait=wait)

    def _measured(self, ok: bool, started: float) -> None:
        if self.meter is not None:
            self.meter.record(ok, (time.perf_counter() - started) * 1000)

    # --- market data --------------------------------------------------------------------------

    def candles(self, product: str, granularity: str, start: datetime, end: datetime) -> list[Candle]:
        """Closed and open candles with start in [start, end), oldest first (one request: at most 350)."""
        what = f"candles {product} {granularity} {start.isoformat()}..{end.isoformat()}"
        args = dict(product_id=product, start=str(int(start.timestamp())), end=str(int(end.timestamp())),
                    granularity=venue_granularity(granularity), limit=MAX_CANDLES_PER_REQUEST)
        method = "get_candles" if self.authenticated else "get_public_candles"
        payload = self._call(what, method, **args)
        rows = payload.get("candles")
        if rows is None:
            raise VenueDataError(f"{what}: the answer has no 'candles' field ({sorted(payload)})")
        candles = [parse_candle(row, product, granularity) for row in rows]
        candles = [c for c in candles if start <= c.start < end]
        return sorted({c.start: c for c in candles}.values(), key=lambda c: c.start)

    def product_spec(self, product: str) -> ProductSpec:
        """The product as the venue lists it (increments, minimums): one request to its product endpoint."""
        method = "get_product" if self.authenticated else "get_public_product"
        return parse_product_spec(self._call(f"product {product}", method, product_id=product), product)

    # --- orders -------------------------------------------------------------------------------

    def create_order(self, client_order_id: str, product: str, side: str, configuration: dict) -> dict[str, Any]:
        return self._call(f"create order {client_order_id}", "create_order", client_order_id=client_order_id,
                          product_id=product, side=side, order_configuration=configuration)

    def cancel_orders(self, venue_order_ids: list[str]) -> list[dict[str, Any]]:
        payload = self._call(f"cancel orders {venue_order_ids}", "cancel_orders", order_ids=venue_order_ids)
        return list(payload.get("results") or [])

    def get_order(self, venue_order_id: str) -> dict[str, Any]:
        payload = self._call(f"get order {venue_order_id}", "get_order", order_id=venue_order_id)
        order = payload.get("order")
        if not order:
            raise VenueDataError(f"get order {venue_order_id}: the answer has no 'order' field")
        return order

    def list_orders(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every order matching the filters, following the venue's cursor."""
        cursor = None
        while True:
            payload = self._call("list orders", "list_orders", cursor=cursor, limit=250, **filters)
            yield from payload.get("orders") or []
            cursor = payload.get("cursor")
            if not payload.get("has_next") or not cursor:
                return

    def list_fills(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every fill matching the filters, following the venue's cursor."""
        cursor = None
        while True:
            payload = self._call("list fills", "get_fills", cursor=cursor, limit=250, **filters)
            yield from payload.get("fills") or []
            cursor = payload.get("cursor")
            if not cursor:
                return

    def accounts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            payload = self._call("list accounts", "get_accounts", cursor=cursor, limit=250)
            out.extend(payload.get("accounts") or [])
            cursor = payload.get("cursor")
            if not payload.get("has_next") or not cursor:
                return out

    def server_time(self) -> datetime:
        """The venue's clock (public endpoint)."""
        from infrastructure.venues.coinbase.schemas import parse_time

        payload = self._call("server time", "get_unix_time")
        seconds = payload.get("epoch_seconds") or payload.get("epochSeconds")
        if seconds:
            return parse_time(str(seconds).split(".")[0], "server time epochSeconds")
        if payload.get("iso"):
            return parse_time(payload["iso"], "server time iso")
        raise VenueDataError(f"server time: no 'iso' or 'epochSeconds' in {sorted(payload)}")
