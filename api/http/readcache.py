"""A cache of whole GET answers in front of the read routes, valid while the read model stands still.

The read model changes only when the projector commits a page, so the answer
to ``GET /positions?...`` is the same bytes until the position moves. This
ASGI middleware keeps the 200 answers of the listed read paths per (path,
query) with the position they were computed at; a request that brings a valid
token (any role may read these paths) is answered from it without routing,
validation or a thread hop. Anything else (no token, a bad one, another path,
an error) goes through the app as usual, so auth and errors stay in one place.

Each page the projector commits makes every kept answer stale at once. The
requests that then ask for one answer together wait for the first one's
computation instead of each computing it again (under load, a dozen clients
asking for the same bot's risk right after a page would otherwise run a dozen
times the same queries on the cores the projector needs).
"""

from __future__ import annotations

import asyncio
from typing import Any

# Read paths whose answer depends only on the read model's content (viewer role).
CACHED_PATHS = frozenset({
    "/positions", "/risk/metrics", "/pnl/daily", "/trades", "/orders", "/decisions", "/equity/curve", "/runs",
    "/market/data", "/indicators/status", "/llm/status", "/incidents", "/alerts", "/reports/daily", "/bots",
})
_MAX_ENTRIES = 1024


class ReadCache:
    """ASGI middleware serving cached read answers to authenticated callers."""

    def __init__(self, app, node: Any):
        self.app, self.node = app, node
        self._entries: dict[tuple[str, bytes], tuple[int, list, bytes]] = {}
        self._position = -1
        self._pending: dict[tuple[str, bytes], tuple[int, asyncio.Future]] = {}  # answers being computed

    def _caller(self, scope) -> Any:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, secret = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and secret:
                    return self.node.tokens.caller(secret.strip())
                return None
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in CACHED_PATHS:
            await self.app(scope, receive, send)
            return
        if self._caller(scope) is None:  # the app answers 401 itself
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        position = self.node.access.position
        if position != self._position:  # the read model moved: every kept answer is stale
            self._entries.clear()
            self._position = position
        hit = self._entries.get(key)
        if hit is None:
            pending = self._pending.get(key)
            if pending is not None and pending[0] == position:  # being computed: take that answer
                hit = await asyncio.shield(pending[1])
        if hit is not None and hit[0] == position:
            await self._send(scope, send, hit)
            return
        waiting = asyncio.get_running_loop().create_future()
        self._pending[key] = (position, waiting)
        captured: dict[str, Any] = {"status": None, "headers": None, "body": []}

        async def capture(message):
            if message["type"] == "http.response.start":
                captured["status"], captured["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        answer = None
        try:
            await self.app(scope, receive, capture)
            if captured["status"] == 200:
                answer = (position, list(captured["headers"]), b"".join(captured["body"]))
                if self._position == position:  # not stale already
                    if len(self._entries) >= _MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[key] = answer
        finally:
            waiting.set_result(answer)  # the waiters compute it themselves if None (an error, a dropped client)
            if self._pending.get(key, (None, None))[1] is waiting:
                del self._pending[key]

    @staticmethod
    async def _send(scope, send, answer: tuple[int, list, bytes]) -> None:
        scope["tradecore.endpoint"] = scope["path"]
        await send({"type": "http.response.start", "status": 200, "headers": answer[1]})
        await send({"type": "http.response.body", "body": answer[2]})
