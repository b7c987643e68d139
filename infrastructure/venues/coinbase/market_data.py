"""Market data from Coinbase: the WebSocket candles feed and paged REST candle downloads.

``CandleStream`` subscribes to the ``candles`` and ``heartbeats`` channels. The
WebSocket is the live signal: its messages carry the venue's clock and prove
the feed is alive. A candle is taken as closed when the venue's clock passes
its end, and is then read from the REST candles endpoint (the venue's settled
candle, the same one ``tradecore data fetch`` records), so a bucket missed while
the socket was down is backfilled by the same request: any gap since the last
closed candle is filled, paged within the venue's 350-candle limit. A socket
that closes, errors or goes quiet for ``stale_after`` seconds (heartbeats
arrive every second) is replaced by a new connection that subscribes again.

The stream never reads the wall clock to decide that a candle closed, so a
local stand-in can replay hours of candles in seconds.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from application.ports import VenueError
from domain.market import Candle, granularity_delta
from infrastructure.venues.coinbase.client import MAX_CANDLES_PER_REQUEST, CoinbaseClient
from infrastructure.venues.coinbase.schemas import parse_time

log = logging.getLogger("tradecore.coinbase.market_data")


def fetch_candles(client: CoinbaseClient, product: str, granularity: str, start: datetime, end: datetime,
                  now: datetime | None = None) -> Iterator[list[Candle]]:
    """Closed candles with start in [start, end), page by page (at most 350 buckets a request), oldest first.

    With ``now``, a candle still open at ``now`` (start + granularity > now) is left out.
    """
    step = granularity_delta(granularity)
    page = step * MAX_CANDLES_PER_REQUEST
    cursor = start
    while cursor < end:
        upto = min(cursor + page, end)
        candles = client.candles(product, granularity, cursor, upto)
        if now is not None:
            candles = [c for c in candles if c.start + step <= now]
        yield candles
        cursor = upto


@dataclass
class FeedStats:
    """How the feed is doing (for health checks and the run summary)."""

    messages: int = 0
    heartbeats: int = 0
    candle_updates: int = 0
    connects: int = 0
    reconnects: int = 0
    backfill_requests: int = 0
    backfilled: int = 0
    closed: int = 0
    last_message_monotonic: float | None = None
    venue_time: datetime | None = None
    last_error: str = ""

    def seconds_since_message(self) -> float | None:
        if self.last_message_monotonic is None:
            return None
        return time.monotonic() - self.last_message_monotonic


class CandleStream:
    """Closed candles of one product and granularity, live from Coinbase (see the module doc)."""

    def __init__(
        self,
        rest: CoinbaseClient,
        product: str,
        granularity: str,
        *,
        ws_url: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        stale_after: float = 10.0,
        reconnect_wait: float = 0.5,
        max_reconnect_wait: float = 10.0,
        rest_interval: float = 1.0,
        connect_timeout: float = 5.0,
        ws_factory: Callable[..., object] | None = None,
    ):
        self.rest = rest
        self.product = product
        self.granularity = granularity
        self.step = granularity_delta(granularity)
        self.ws_url = ws_url
        self.api_key, self.api_secret = api_key, api_secret
        self.stale_after = stale_after
        self.reconnect_wait = reconnect_wait
        self.max_reconnect_wait = max_reconnect_wait
        self.rest_interval = rest_interval
        self.connect_timeout = connect_timeout
        self.stats = FeedStats()
        self._ws_factory = ws_factory
        self._ws = None
        self._closed: queue.Queue[Candle] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_end: datetime | None = None
        self._last_rest = 0.0

    # --- the public side --------------------------------------------------------------------

    def start(self, after: datetime) -> None:
        """Connect and deliver every candle that closes after ``after`` (a candle end)."""
        self._last_end = after
        self._thread = threading.Thread(target=self._supervise, name=f"candles-{self.product}", daemon=True)
        self._thread.start()

    def next_closed(self, timeout: float) -> Candle | None:
        """The next closed candle, or None when none closed within ``timeout`` seconds."""
        try:
            return self._closed.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._disconnect()

    # --- the socket ---------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._ws_factory is not None:
            ws = self._ws_factory(on_message=self._on_message)
        else:
            from coinbase.websocket import WSClient

            logging.getLogger("coinbase.WSClient").setLevel(logging.CRITICAL)  # we log translated errors ourselves
            ws = WSClient(api_key=self.api_key, api_secret=self.api_secret, base_url=self.ws_url,
                          on_message=self._on_message, retry=False, timeout=self.connect_timeout)
        ws.open()
        self._ws = ws
        ws.subscribe([self.product], ["candles", "heartbeats"])
        self.stats.connects += 1
        self.stats.last_message_monotonic = time.monotonic()  # the stale clock starts at the connect

    def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - already closed by the peer: stop its event loop ourselves
            loop = getattr(ws, "loop", None)
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)

    def _alive(self) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            if hasattr(ws, "_is_websocket_open") and not ws._is_websocket_open():
                return False
        except Exception:  # noqa: BLE001
            return False
        age = self.stats.seconds_since_message()
        return age is None or age <= self.stale_after

    def _on_message(self, raw: str) -> None:
        # Runs on the SDK's thread: it must never raise (the SDK would stop reading silently).
        try:
            message = json.loads(raw)
            self.stats.messages += 1
            self.stats.last_message_monotonic = time.monotonic()
            channel = message.get("channel")
            if message.get("type") == "error":
                self.stats.last_error = str(message.get("message"))
                log.warning("candles feed error from the venue: %s", self.stats.last_error)
                return
            stamp = message.get("timestamp")
            venue_time = parse_time(stamp, "message timestamp") if stamp else None
            if channel == "heartbeats":
                self.stats.heartbeats += 1
            elif channel == "candles":
                for event in message.get("events") or []:
                    for candle in event.get("candles") or []:
                        if candle.get("product_id") == self.product:
                            self.stats.candle_updates += 1
                            start = parse_time(candle.get("start"), "candle start")
                            venue_time = max(venue_time or start, start)
            if venue_time is not None:
                with self._lock:
                    if self.stats.venue_time is None or venue_time > self.stats.venue_time:
                        self.stats.venue_time = venue_time
            self._wake.set()
        except Exception as exc:  # noqa: BLE001
            self.stats.last_error = f"unreadable message: {exc}"
            log.warning("ignored an unreadable candles-feed message: %s", exc)

    # --- the supervisor -------------------------------------------------------------------------

    def _supervise(self) -> None:
        wait = self.reconnect_wait
        while not self._stop.is_set():
            if not self._alive():
                if self._ws is not None:
                    self.stats.reconnects += 1
                    log.warning("candles feed for %s went quiet or closed; reconnecting", self.product)
                    self._disconnect()
                try:
                    self._connect()
                    wait = self.reconnect_wait
                except Exception as exc:  # noqa: BLE001 - keep trying; health checks see the stale feed
                    self.stats.last_error = f"connect failed: {exc}"
                    log.warning("cannot connect the candles feed (%s); retrying in %.1fs", exc, wait)
                    self._disconnect()
                    self._stop.wait(wait)
                    wait = min(wait * 2, self.max_reconnect_wait)
                    continue
            self._wake.wait(timeout=min(0.5, self.stale_after / 2))
            self._wake.clear()
            try:
                self._deliver_closed()
            except VenueError as exc:
                self.stats.last_error = str(exc)
                log.warning("candle backfill failed, will retry: %s", exc)
                self._stop.wait(self.rest_interval)

    def _deliver_closed(self) -> None:
        with self._lock:
            venue_now = self.stats.venue_time
        last_end = self._last_end
        if venue_now is None or last_end is None or last_end + self.step > venue_now:
            return
        if time.monotonic() - self._last_rest < self.rest_interval:
            self._wake.set()  # come back soon
            time.sleep(0.05)
            return
        self._last_rest = time.monotonic()
        boundary = last_end + ((venue_now - last_end) // self.step) * self.step
        for page in fetch_candles(self.rest, self.product, self.granularity, last_end, boundary, venue_now):
            self.stats.backfill_requests += 1
            fresh = [c for c in page if c.start >= self._last_end]
            self.stats.backfilled += max(0, len(fresh) - 1)  # more than the one just closed: a gap was filled
            for candle in fresh:
                self._closed.put(candle)
                self.stats.closed += 1
                self._last_end = candle.start + self.step

    @property
    def last_closed_end(self) -> datetime | None:
        return self._last_end


def history(client: CoinbaseClient, product: str, granularity: str, count: int, now: datetime) -> list[Candle]:
    """The ``count`` closed candles before ``now`` (to warm indicators up), oldest first."""
    step = granularity_delta(granularity)
    end = now - (now - datetime.fromtimestamp(0, now.tzinfo)) % step  # the start of the open candle
    start = end - step * count
    out: list[Candle] = []
    for page in fetch_candles(client, product, granularity, start, end, now):
        out.extend(page)
    return out[-count:]


