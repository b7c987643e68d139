"""Bearer tokens from settings (``system.api_tokens``): who is calling and what their role allows.

Roles nest: a viewer reads the dashboards' endpoints; an auditor also pages the
event log and replays; an operator also halts, resumes, cancels and changes
the configuration. Tokens are compared in constant time (hmac.compare_digest)
against every configured token, and never logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.http.errors import Forbidden, Unauthorized

ROLES = ("viewer", "auditor", "operator")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(auto_error=False, description="A token from SYSTEM__API_TOKENS; its role decides what it may do")


@dataclass(frozen=True)
class Caller:
    """Who made the request: the token's name (the actor of what they record) and role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


class TokenBook:
    """The configured tokens; ``caller(secret)`` finds the holder in constant time per token."""

    def __init__(self, tokens: list[Any]):
        self._tokens = [(t.token.get_secret_value().encode("utf-8"), Caller(t.name, t.role)) for t in tokens]

    def __len__(self) -> int:
        return len(self._tokens)

    def caller(self, secret: str) -> Caller | None:
        given = secret.encode("utf-8")
        found = None
        for token, caller in self._tokens:  # no early exit: the time does not tell which token matched
            if hmac.compare_digest(given, token):
                found = caller
        return found


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller of a request, or 401."""
    book: TokenBook = request.app.state.node.tokens
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("this endpoint needs a bearer token (Authorization: Bearer <token>)", headers=_CHALLENGE)
    caller = book.caller(credentials.credentials)
    if caller is None:
        raise Unauthorized("unknown bearer token", headers=_CHALLENGE)
    return caller


def require(role: str):
    """A dependency: the caller, who must hold at least ``role`` (401 without a token, 403 below it)."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        caller = authenticate(request, credentials)
        if not caller.may(role):
            raise Forbidden(f"the token {caller.name!r} has role {caller.role}; this needs {role} or above")
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency


def open_or(role: str, path: str):
    """For /health and /metrics: open when ``system.api_open_endpoints`` lists the path, else ``role``."""
    guarded = require(role)

    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller | None:
        if path in request.app.state.node.open_endpoints:
            return None
        return await guarded(request, credentials)

    dependency.__name__ = f"open_or_{role}"
    return dependency


VIEWER = Depends(require("viewer"))
AUDITOR = Depends(require("auditor"))
OPERATOR = Depends(require("operator"))
