"""The API app: the route modules' operations, /openapi.json built from the same
declarations, /metrics, and error handlers that keep every refusal in the shape
{"error": code, "message": text}."""

from __future__ import annotations

from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.api import accounts, chain, market, txs
from node.api.chain import package_version
from node.api.errors import on_http_exception, on_unexpected
from node.api.metrics import NodeMetrics
from node.api.routing import Api, Operation, Reply, json_response, openapi_document
from node.api.schemas import SCHEMAS
from node.errors import NodeError, first_of
from node.runtime.services import NodeServices

# Each module exports OPERATIONS; order matters only where paths overlap (/blocks/latest
# before /blocks/{height}).
ROUTE_MODULES = (chain, accounts, txs, market)
API_DESCRIPTION = (
    "JSON API of a Jevons node. Amounts are integers in base units (1 JEV = 10^6 ujev); "
    "addresses are bech32 ('jev1…'); hashes and keys are hex. Every refusal is a 4xx with "
    'the body {"error": code, "message": text}. See docs/api.md.')


async def get_metrics(api: Api, request: Request, args: dict[str, Any]) -> Response:
    body, content_type = api.metrics.render(request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type})


async def get_openapi(api: Api, request: Request, args: dict[str, Any]) -> Response:
    return Response(request.app.state.openapi_body, media_type="application/json")


SERVICE_OPERATIONS = (
    Operation("GET", "/metrics", "getMetrics", "Prometheus metrics", get_metrics,
              {200: Reply("metrics in the Prometheus text format (OpenMetrics when the "
                          "Accept header asks for application/openmetrics-text)",
                          {"type": "string"}, "text/plain")}, tag="service"),
    Operation("GET", "/openapi.json", "getOpenApi", "This API's OpenAPI 3 description",
              get_openapi, {200: Reply("the OpenAPI document", {"type": "object"})},
              tag="service"),
)


def all_operations() -> list[Operation]:
    return [op for module in ROUTE_MODULES for op in module.OPERATIONS] + list(
        SERVICE_OPERATIONS)


def openapi(operations: list[Operation] | None = None) -> dict[str, Any]:
    info = {"title": "Jevons node API", "version": package_version(),
            "description": API_DESCRIPTION}
    return openapi_document(operations or all_operations(), info,
                            {**SCHEMAS, **market.SCHEMAS})


def build_app(services: NodeServices, node_info: dict[str, Any],
              metrics: NodeMetrics | None = None) -> Starlette:
    api = Api(services, node_info, metrics or NodeMetrics(services))
    operations = all_operations()
    app = Starlette(routes=[op.route(api) for op in operations],
                    exception_handlers={HTTPException: on_http_exception,
                                        Exception: on_unexpected})
    app.router.redirect_slashes = False
    app.state.openapi = openapi(operations)
    app.state.openapi_body = json_response(app.state.openapi).body  # rendered once
    app.state.api = api
    return app


def routes_of(app: Starlette) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, for checks against the document."""
    return [(method, route.path) for route in app.routes if isinstance(route, Route)
            for method in sorted(route.methods or ()) if method != "HEAD"]


async def serve_api(app: Starlette, listen: str,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = None
    try:
        await serve(app, config, task_status=task_status)  # started once bound
    except (OSError, BaseExceptionGroup) as exc:  # taken, or a host that does not resolve
        error = first_of(exc, OSError)
        if error is None:
            raise
        raise NodeError(f"the API cannot listen on {listen}: {error.strerror or error}"
                        ) from exc
