"""`OPTIONS` on any path answers which methods it allows (``Allow``), as RFC 9110 asks.

Starlette answers OPTIONS with 405 and only the routes' own methods; this answers
204 with every method of every route whose path matches (plus HEAD where GET is
allowed, and OPTIONS itself). A path no route matches stays a 404.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Mount
from starlette.types import Receive, Scope, Send


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, scope: Scope) -> set[str]:
    """The methods the app's routes allow at this path (empty when no route matches it).

    Each method is asked of the routes the way the router itself asks (``matches``), so
    included routers count without reading their internals.
    """
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Mount):  # static files: read-only
            if route.matches({**scope, "method": "GET"})[0] is not Match.NONE:
                methods |= {"GET", "HEAD"}
            continue
        methods |= {m for m in METHODS if route.matches({**scope, "method": m})[0] is Match.FULL}
    if methods:
        methods.add("OPTIONS")
        if "GET" in methods:
            methods.add("HEAD")
    return methods


class AnswerOptions:
    """ASGI middleware: OPTIONS gets 204 and ``Allow``; every other request passes through."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(scope["app"], scope)
        if not methods:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods)).encode()
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow)]})
        await send({"type": "http.response.body", "body": b""})
