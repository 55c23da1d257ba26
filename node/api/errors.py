"""API errors: every refusal is a JSON body {"error": code, "message": text} with a 4xx status
(5xx only for a bug, which is logged with its traceback)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("jevons.api")
MAX_ECHO = 80  # characters of a bad input quoted back in a message


class ApiError(Exception):
    """A request the API refuses: `status` (4xx), a stable `code` and a message for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, **self.extra)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def echo(value: object) -> str:
    """`value` quoted for a message, cut to MAX_ECHO characters."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…"


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def on_http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method) in our error shape."""
    code = HTTP_CODES.get(exc.status_code, "bad_request")
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}: GET /openapi.json lists the routes"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path!r}"
    else:
        message = str(exc.detail)
    response = error_response(exc.status_code, code, message)
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log it with its traceback and answer 500 in our error shape."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", f"internal error ({type(exc).__name__}); "
                          "see the node's log")
