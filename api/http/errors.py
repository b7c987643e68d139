"""The one place where errors become HTTP answers: every error body is ``{"error", "detail"}``.

Domain and application errors map to 4xx (a refused command is 409 or 422, a
missing thing 404); a read model that is still being built, or a store that
cannot be reached, is 503; a bad query parameter is 422 naming it; a body that
is not JSON at all is 400 (``malformed_json``). Anything
else is a bug: 500 with a generic body, the traceback in the server log only.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http.jsonio import json_response
from api.http.readmodel import ReadModelNotReady
from application.errors import ConcurrencyConflict, NotFound, StoreUnavailable
from domain.control import AlreadyHalted, NotHalted
from domain.events import DomainError
from projections.reading.reports import NoData

log = logging.getLogger("tradecore.api")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: str
    detail: str


class ApiError(Exception):
    """An error the API raises itself, with its status and machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code or type(self).code
        self.headers = headers


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class Missing(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class BadParameter(ApiError):
    status, code = 422, "invalid_parameter"


class NotImplementedYet(ApiError):
    status, code = 501, "not_implemented"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def error_response(status: int, error: str, detail: str, headers: dict | None = None):
    return json_response({"error": error, "detail": detail}, status, headers)


def _where(loc: tuple) -> str:
    kinds = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}
    if not loc:
        return "request"
    kind = kinds.get(str(loc[0]), str(loc[0]))
    name = ".".join(str(part) for part in loc[1:])
    return f"{kind} {name!r}" if name else kind


def validation_detail(exc: RequestValidationError) -> str:
    """Each bad parameter by kind and name, with why: `query parameter 'limit': ...`."""
    parts = []
    for problem in exc.errors():
        message = str(problem.get("msg", "invalid"))
        parts.append(f"{_where(tuple(problem.get('loc', ())))}: {message}")
    return "; ".join(parts) or "invalid request"


# Status codes documented on every route (the OpenAPI schema lists them; schemathesis checks them).
COMMON_RESPONSES = {
    400: {"model": ErrorBody, "description": "the request body is not valid JSON (error malformed_json)"},
    401: {"model": ErrorBody, "description": "no or unknown bearer token"},
    403: {"model": ErrorBody, "description": "the token's role may not do this"},
    422: {"model": ErrorBody, "description": "a bad parameter, named in detail"},
    503: {"model": ErrorBody, "description": "the read model or the store is not available"},
}
NOT_FOUND = {404: {"model": ErrorBody, "description": "nothing matches"}}
CONFLICT = {409: {"model": ErrorBody, "description": "the command conflicts with the current state"}}


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers: the only mapping from errors to status codes."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        broken = next((p for p in exc.errors() if p.get("type") == "json_invalid"), None)
        if broken is not None:  # not a bad value but no JSON at all: the client's encoder is wrong
            loc, why = broken.get("loc", ()), (broken.get("ctx") or {}).get("error", "JSON decode error")
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            return error_response(400, "malformed_json", f"the request body is not valid JSON: {why}{at}")
        return error_response(422, "invalid_parameter", validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                              getattr(exc, "headers", None))

    # Errors of the domain and the read side: (status, error code, headers) each, one handler for all.
    answers = {
        NotFound: (404, "not_found", None), NoData: (404, "no_data", None),
        AlreadyHalted: (409, "already_halted", None), NotHalted: (409, "not_halted", None),
        ConcurrencyConflict: (409, "conflict", None), DomainError: (422, "refused", None),
        ReadModelNotReady: (503, "read_model_not_ready", {"Retry-After": "1"}),
        StoreUnavailable: (503, "store_unavailable", {"Retry-After": "5"}),
    }

    def answer(status: int, code: str, headers: dict | None):
        async def handler(_: Request, exc: Exception):
            return error_response(status, code, str(exc), headers)
        return handler

    for kind, (status, code, headers) in answers.items():
        app.add_exception_handler(kind, answer(status, code, headers))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}: the server log has the details")
