"""Operations: each route declared once, as data, with its handler.

An `Operation` names its method and path, its parameters (with JSON schemas), its request
body and every response it can give. The same declaration is used three ways: to parse and
check the request's parameters before the handler runs (so a bad value is refused with the
parameter's own error code), to build the Starlette route, and to write the operation into
the OpenAPI document at /openapi.json. A new group of routes (for example the market's
/providers, /jobs/{id}, /market) is a module with an OPERATIONS tuple, added to
`node.api.app.ROUTE_MODULES`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.api.errors import ApiError, echo, error_response
from node.api.schemas import ref

if TYPE_CHECKING:
    from node.api.metrics import NodeMetrics
    from node.runtime.host import ConsensusHost
    from node.runtime.services import NodeServices

log = logging.getLogger("jevons.api")
MAX_INT64 = 2**63 - 1
MAX_DOWNLOADS = 2  # concurrent GET /jobs/{id}/output; more are refused with 503 busy
DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass
class Api:
    """What handlers read: the node's services and host, its static info, its metrics."""

    services: NodeServices
    node_info: dict[str, Any]
    metrics: NodeMetrics
    downloads: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(MAX_DOWNLOADS))
    """Output downloads in progress (each holds up to MAX_DOWNLOAD_BYTES in memory)."""

    @property
    def host(self) -> ConsensusHost:
        return self.services.host


Handler = Callable[[Api, Request, dict[str, Any]], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    """A path (or query) parameter: its JSON schema is both documentation and the check."""

    name: str
    schema: dict[str, Any]
    description: str
    code: str  # the error code of a refused value, e.g. "bad_height"
    expect: str  # what a good value is, for the error message
    location: str = "path"
    required: bool = True

    def parse(self, raw: str) -> Any:
        if self.schema.get("type") == "integer":
            return self._parse_integer(raw)
        shortest, longest = self.schema.get("minLength", 0), self.schema.get("maxLength")
        if len(raw) < shortest or (longest is not None and len(raw) > longest):
            raise self.refuse(raw)
        pattern = self.schema.get("pattern")
        if pattern is not None and re.search(python_pattern(pattern), raw) is None:
            raise self.refuse(raw)
        return raw

    def _parse_integer(self, raw: str) -> int:
        if DIGITS.fullmatch(raw) is None:
            raise self.refuse(raw)
        value = int(raw)
        if not self.schema.get("minimum", 0) <= value <= self.schema.get("maximum", MAX_INT64):
            raise self.refuse(raw)
        return value

    def refuse(self, raw: str) -> ApiError:
        return ApiError(400, self.code, f"{self.name} must be {self.expect}; got {echo(raw)}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "in": self.location, "required": self.required,
                "description": f"{self.description} ({self.expect}; otherwise 400 "
                               f"{self.code})", "schema": self.schema}


@dataclass(frozen=True)
class Reply:
    """One documented response: a description and the schema of its body."""

    description: str
    schema: dict[str, Any] = field(default_factory=lambda: ref("Error"))
    media_type: str = "application/json"

    def describe(self) -> dict[str, Any]:
        return {"description": self.description,
                "content": {self.media_type: {"schema": self.schema}}}


SERVER_ERROR = Reply("internal: a bug in the node (logged with its traceback)")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    responses: dict[int, Reply]
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of a JSON request body
    description: str = ""
    tag: str = "chain"

    def parse_params(self, request: Request) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for param in self.params:
            source = (request.path_params if param.location == "path"
                      else request.query_params)
            raw = source.get(param.name)
            if raw is None:
                if param.required:
                    raise ApiError(400, param.code, f"{param.name} is required: "
                                                    f"{param.expect}")
                continue
            args[param.name] = param.parse(raw)
        return args

    def route(self, api: Api) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                response = await self.handler(api, request, self.parse_params(request))
            except ApiError as exc:
                response = exc.response()
            except Exception as exc:  # a bug: logged, answered in our error shape, counted
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
                response = error_response(500, "internal", f"internal error "
                                          f"({type(exc).__name__}); see the node's log")
            api.metrics.count_request(self.operation_id, response.status_code)
            return response

        return Route(self.path, endpoint, methods=[self.method], name=self.operation_id)

    def describe(self) -> dict[str, Any]:
        responses = {**self.responses, 500: SERVER_ERROR}
        doc: dict[str, Any] = {
            "operationId": self.operation_id, "summary": self.summary, "tags": [self.tag],
            "responses": {str(code): reply.describe()
                          for code, reply in sorted(responses.items())},
        }
        if self.description:
            doc["description"] = self.description
        if self.params:
            doc["parameters"] = [p.describe() for p in self.params]
        if self.body is not None:
            doc["requestBody"] = {"required": True,
                                  "content": {"application/json": {"schema": self.body}}}
        return doc


def python_pattern(pattern: str) -> str:
    """A JSON-schema pattern for Python's re: `$` there never matches before a final
    newline, as it does in Python, so a trailing `$` becomes `\\Z`."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def openapi_document(operations: list[Operation], info: dict[str, Any],
                     schemas: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = op.describe()
    tags = sorted({op.tag for op in operations})
    return {"openapi": "3.0.3", "info": info, "tags": [{"name": t} for t in tags],
            "paths": paths, "components": {"schemas": schemas}}
