"""SDK and transport errors translated into the venue errors of application/ports.py.

4xx -> ``VenueClientError`` (401/403 ``VenueAuthError``, 429 ``VenueRateLimited`` with the wait
the venue asked for); 5xx -> ``VenueServerError``; no answer -> ``VenueUnavailable``. The
retryable ones (429, 5xx, no answer) are retried with exponential backoff by ``retrying``.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from application.ports import (
    VenueAuthError,
    VenueClientError,
    VenueError,
    VenueRateLimited,
    VenueServerError,
    VenueUnavailable,
)

log = logging.getLogger("tradecore.coinbase")
T = TypeVar("T")


def translate(exc: BaseException, what: str) -> VenueError:
    """Our error for an exception raised by the SDK or requests while doing ``what``."""
    if isinstance(exc, VenueError):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        status = response.status_code
        body = _short(response.text)
        message = f"{what}: HTTP {status} from the venue: {body}"
        if status == 429:
            return VenueRateLimited(message, retry_after=_retry_after(response))
        if status in (401, 403):
            return VenueAuthError(message, status)
        if 400 <= status < 500:
            return VenueClientError(message, status)
        return VenueServerError(message, status)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return VenueUnavailable(f"{what}: the venue did not answer ({type(exc).__name__}: {_short(str(exc))})")
    if isinstance(exc, multiprocessing.AuthenticationError):  # the SDK's "no keys for a private endpoint"
        return VenueAuthError(f"{what}: {exc}")
    if isinstance(exc, requests.RequestException):
        return VenueUnavailable(f"{what}: {type(exc).__name__}: {_short(str(exc))}")
    if isinstance(exc, ValueError):  # e.g. a response that is not JSON
        return VenueServerError(f"{what}: unreadable answer from the venue: {_short(str(exc))}")
    raise exc


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable venue error."""

    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 10.0
    max_rate_limit_wait: float = 60.0

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, VenueRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_rate_limit_wait)  # wait as the venue asks
        return min(self.initial_wait * (2 ** (state.attempt_number - 1)), self.max_wait)


def retrying(policy: RetryPolicy, what: str, call: Callable[[], T]) -> T:
    """Run ``call``; translate its errors; retry the retryable ones per ``policy``; raise ours."""

    def attempt() -> T:
        try:
            return call()
        except VenueError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated or re-raised
            raise translate(exc, what) from None

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (attempt %d of %d), retrying: %s", what, state.attempt_number, policy.attempts, exc)

    for try_ in Retrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=policy.wait,
        retry=retry_if_exception(lambda e: isinstance(e, VenueError) and e.retryable),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with try_:
            return attempt()
    raise AssertionError("unreachable")  # pragma: no cover
