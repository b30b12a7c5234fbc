"""Operations endpoints: /healthz, /readyz, /metrics and /api/openapi.json (all public)."""

import sqlite3

import psycopg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.body import json_response
from api.errors import ApiError
from api.keys import FLEET, REGISTRY, ROUTES
from api.routing import Access, Route
from api.schemas import Health

METRICS = web.AppKey("metrics", CollectorRegistry)


async def healthz(request: web.Request) -> web.Response:
    """200 while the process answers at all: the liveness probe."""
    return json_response(Health("ok"))


async def readyz(request: web.Request) -> web.Response:
    """200 once the registry answers and the fleet is ready; 503 before (or while, in
    cluster mode, this node's leases are not renewed in time). Names the node."""
    try:
        request.app[REGISTRY].schema_version()
    except (sqlite3.Error, psycopg.Error) as error:
        raise ApiError(503, f"registry unavailable: {type(error).__name__}") from error
    fleet = request.app[FLEET]
    if not fleet.ready():
        raise ApiError(503, f"node {fleet.node_id} is not ready (starting, or its leases"
                            " are not renewed in time)")
    return json_response(Health("ready", node=fleet.node_id))


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.Response:
    from api.openapi import build_spec

    return json_response(build_spec(request.app[ROUTES]))


ROUTES_OPS = [
    Route("GET", "/healthz", healthz, "Liveness", None, Health, (200,), Access.PUBLIC),
    Route("GET", "/readyz", readyz, "Readiness", None, Health, (200, 503), Access.PUBLIC),
    Route("GET", "/metrics", metrics, "Prometheus metrics", None, None, (200,), Access.PUBLIC,
          content_type="text/plain"),
    Route("GET", "/api/openapi.json", openapi, "This document", None, None, (200,),
          Access.PUBLIC),
]
