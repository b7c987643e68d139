"""What the read routes share: the run a view describes, paging limits, and cached JSON answers.

A JSON answer is computed at most once per read-model position: requests that ask for it while it is being
computed wait for that computation, and at most ``READ_THREADS`` answers are computed at once (DuckDB queries in
worker threads), so a burst of requests right after a page neither repeats work nor crowds out the projector.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import anyio.to_thread
from fastapi import Query

from api.http.errors import BadParameter, Missing
from api.http.jsonio import JsonBytes, dumps

MAX_LIMIT = 1000
MAX_ID = 2**62  # notification ids are BIGINT; anything above is no id at all

Limit = Query(100, ge=1, le=MAX_LIMIT, description=f"at most this many items (1 to {MAX_LIMIT})")
Before = Query(None, ge=1, le=MAX_ID, description="paging cursor: only items with a notification id below this")
Offset = Query(0, ge=0, le=10_000_000, description="paging: skip this many items")
RunId = Query(None, description="the run (default: the active paper/live run, else the latest run)")
BOT_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$"  # trading.bot_id's shape
Bot = Query(None, pattern=BOT_PATTERN, description="the bot (`GET /bots`): its active run, else its latest; "
            "with run_id, the run must be the bot's")

READ_THREADS = max(2, min(4, os.cpu_count() or 2))  # answers computed at once

RUN_COLUMNS = ("run_id::VARCHAR AS run_id, mode, product, granularity, strategy, status, started_at, ended_at, bot_id")


def choose_run(node, run_id: uuid.UUID | None, bot: str | None = None) -> dict[str, Any] | None:
    """The run asked for (404 if unknown, or not ``bot``'s), else ``bot``'s (404 if the bot never ran) or every
    bot's active paper/live run, else the latest one (None if no run)."""
    access = node.access
    if run_id is not None:
        found = access.cached(("run", run_id), lambda: access.one(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?::UUID", [str(run_id)]))
        if found is None:
            raise Missing(f"no run {run_id} in the read model", code="unknown_run")
        if bot is not None and found["bot_id"] != bot:
            raise Missing(f"run {run_id} is bot {found['bot_id']}'s, not {bot}'s", code="unknown_run")
        return found
    latest = access.cached(("run", None, bot), lambda: access.one(
        f"SELECT {RUN_COLUMNS} FROM runs {'WHERE bot_id = ?' if bot else ''} "
        "ORDER BY (mode <> 'backtest' AND ended_at IS NULL) DESC, started_at DESC, run_id DESC LIMIT 1",
        [bot] if bot else []))
    if latest is None and bot is not None:
        raise Missing(f"no bot {bot!r} in the read model (GET /bots lists them)", code="unknown_bot")
    return latest


async def cached_json(node, key: Any, compute: Callable[[], Any]) -> JsonBytes:
    """The JSON answer for ``key`` at the read model's position: from the cache, from the computation of it already
    under way, or computed once in a worker thread."""
    return await cached_bytes(node, key, lambda: dumps(compute()))


async def cached_bytes(node, key: Any, compute: Callable[[], bytes], family: Any = None) -> JsonBytes:
    """``cached_json`` for a ``compute`` that returns the JSON bytes itself. With ``family``, one computation
    answers every key of the family (api/http/fleet.py: every bot's at once, kept by ``ReadModelAccess.keep``), so
    a request for any of them waits for the one under way instead of starting another."""
    access = node.access
    body = access.peek(key)
    if body is not None:
        return JsonBytes(body)
    position, answers = access.position, node.answers
    flight = key if family is None else family
    pending = answers.computing.get(flight)
    if pending is not None and pending[0] == position:
        found = await asyncio.shield(pending[1])
        body = found if family is None else access.peek(key)
        if body is not None:
            return JsonBytes(body)
    waiting = asyncio.get_running_loop().create_future()
    answers.computing[flight] = (position, waiting)
    try:
        body = await anyio.to_thread.run_sync(access.cached, key, compute, limiter=answers.limiter())
    finally:
        waiting.set_result(body)  # None after an error: a waiter computes it itself (and meets the error itself)
        if answers.computing.get(flight, (None, None))[1] is waiting:
            del answers.computing[flight]
    return JsonBytes(body)


class Answers:
    """The answers being computed (key -> (position, future)), the limit on computing them at once, and the hot
    families (asked for in the last ``HOT_SECONDS``) that the projector computes ahead after each page."""

    HOT_SECONDS = 10.0

    def __init__(self, threads: int = READ_THREADS):
        self.computing: dict[Any, tuple[int, asyncio.Future]] = {}
        self.hot: dict[Any, tuple[float, Callable[[int], dict]]] = {}  # family -> (last asked, recipe)
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    def used(self, family: Any, recipe: Callable[[int], dict]) -> None:
        """``family`` was asked for: ``recipe(position)`` computes all its answers (key -> value) at a position."""
        self.hot[family] = (time.monotonic(), recipe)

    def warm(self, position: int) -> dict:
        """The hot families' answers at ``position`` (computed in the projector's thread, before the API sees it);
        a family nobody asked for lately is dropped, one that fails is left to the requests."""
        answers: dict = {}
        for family, (asked, recipe) in list(self.hot.items()):
            if time.monotonic() - asked > self.HOT_SECONDS:
                self.hot.pop(family, None)
                continue
            try:
                answers.update(recipe(position))
            except Exception:  # noqa: BLE001 - e.g. the read model being built: the request computes it and says why
                self.hot.pop(family, None)
        return answers

    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made inside the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter


def utc(moment: datetime | None, name: str) -> datetime | None:
    """A query-parameter time in UTC (naive means UTC); 422 naming the parameter when out of range."""
    if moment is None:
        return None
    try:
        value = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError) as exc:
        raise BadParameter(f"query parameter {name!r}: {exc}") from None


def page_after(rows: list[dict], limit: int, key: str = "notification_id") -> int | None:
    """The cursor of the next page (newest first), or None when this page was the last."""
    return rows[limit - 1][key] if len(rows) > limit else None
