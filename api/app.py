"""The aiohttp application factory: routes from every group, auth, one error shape.

The dashboard (GET / and /static/*) is served beside the API; it is a page,
not an API route, so it is not in the route table or the OpenAPI document.
"""

from aiohttp import web
from prometheus_client import CollectorRegistry

from api import audit, bots, events, history, logs, messages, users, webhook, ws
from api.auth import auth_middleware
from api.body import MAX_BODY
from api.dashboard import add_dashboard_routes
from api.errors import error_middleware
from api.fleet import Fleet
from api.holder import close_session, holder_middleware
from api.inflight import WEBHOOK_MAX_INFLIGHT, InFlight
from api.keys import FLEET, PATHS, REGISTRY, ROUTES, SECURITY
from api.metrics import FleetCollector
from api.ops import METRICS, ROUTES_OPS
from api.routing import Route
from shared.paths import DataPaths
from shared.security import SecurityPolicy
from store import Store


def all_routes() -> list[Route]:
    return [*users.ROUTES, *bots.ROUTES, *ws.ROUTES, *logs.ROUTES, *messages.ROUTES,
            *webhook.ROUTES, *events.ROUTES, *history.ROUTES, *audit.ROUTES, *ROUTES_OPS]


def create_app(
    fleet: Fleet, registry: Store, paths: DataPaths, security: SecurityPolicy | None = None,
    webhook_max_inflight: int = WEBHOOK_MAX_INFLIGHT,
) -> web.Application:
    """The management API; it reaches processes only through `fleet`.

    `security`: the operator's policy with the API's own port set (default: the defaults).
    `webhook_max_inflight`: deliveries per bot the public webhook route handles at once.
    """
    app = web.Application(
        middlewares=[audit.audit_middleware, error_middleware, auth_middleware,
                     holder_middleware],
        client_max_size=MAX_BODY,
    )
    app.on_cleanup.append(close_session)
    routes = all_routes()
    app[FLEET] = fleet
    app[REGISTRY] = registry
    app[PATHS] = paths
    app[ROUTES] = routes
    app[SECURITY] = security or SecurityPolicy()
    app[webhook.WEBHOOK_INFLIGHT] = InFlight(webhook_max_inflight)
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(FleetCollector(fleet, registry))
    app[METRICS] = metrics
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    add_dashboard_routes(app)
    app[history.HISTORY] = history.History()
    app.cleanup_ctx.append(history.history_context)
    return app
