"""In-process counts of exchange API calls: the error rate and response time the health checks judge."""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from application.ports import Clock

class ApiCallMeter:
    """Counts exchange API calls in a sliding window: error rate and p95 response time.

    The exchange adapter calls ``record(ok, latency_ms)`` after each request; the
    health probe reads ``error_rate_pct()`` / ``response_p95_ms()`` (None when no
    call was made in the window, so the check is skipped, not passed). Thread-safe.
    """

    def __init__(self, clock: Clock, window: timedelta = timedelta(minutes=15), max_calls: int = 100_000):
        self.clock = clock
        self.window = window
        self._calls: deque[tuple[datetime, bool, float]] = deque(maxlen=max_calls)
        self._lock = threading.Lock()

    def record(self, ok: bool, latency_ms: float) -> None:
        with self._lock:
            self._calls.append((self.clock.now(), bool(ok), float(latency_ms)))

    def _recent(self) -> list[tuple[datetime, bool, float]]:
        cutoff = self.clock.now() - self.window
        with self._lock:
            while self._calls and self._calls[0][0] < cutoff:
                self._calls.popleft()
            return list(self._calls)

    def error_rate_pct(self) -> Decimal | None:
        calls = self._recent()
        if not calls:
            return None
        failed = sum(1 for _, ok, _ in calls if not ok)
        return (Decimal(failed) * 100 / Decimal(len(calls))).quantize(Decimal("0.01"))

    def response_p95_ms(self) -> Decimal | None:
        latencies = sorted(ms for _, _, ms in self._recent())
        if not latencies:
            return None
        rank = max(math.ceil(0.95 * len(latencies)) - 1, 0)
        return Decimal(repr(latencies[rank])).quantize(Decimal("0.1"))
