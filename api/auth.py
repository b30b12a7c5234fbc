"""Bearer-token authentication and the owner scope every bot route applies.

Public routes (health, readiness, metrics, the schema, webhooks) need no
token; every other /api route needs a valid one, admin routes an admin's.
"""

import dataclasses
import logging

from aiohttp import web

from api.errors import ApiError, Handler, not_found
from api.keys import CALLER, REGISTRY, ROUTES, USER
from api.routing import Access, Route
from store import BotBrief, BotRecord, NotFound, User

logger = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""What a viewer token may do; every other method is a change (403)."""


def _route_of(request: web.Request) -> Route | None:
    info = request.match_info.route.resource
    if info is None:
        return None
    canonical = info.canonical
    for route in request.app[ROUTES]:
        if route.path == canonical and route.method == request.method:
            return route
    return None


def _access(request: web.Request) -> Access:
    route = _route_of(request)
    if route is not None:
        return route.access
    if request.path.startswith("/api/") and request.path != "/api/openapi.json":
        return Access.USER
    return Access.PUBLIC


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = _access(request)
    if access is Access.PUBLIC:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)")
    found = request.app[REGISTRY].authenticate(token)
    if found is None:
        raise ApiError(401, "invalid, expired or revoked token")
    user = dataclasses.replace(found.user, is_admin=found.is_admin)
    request[USER] = user
    request[CALLER] = found
    if found.scope == "viewer" and request.method not in READ_METHODS:
        raise ApiError(403, "a viewer token only reads (status, logs, metrics, events)")
    if access is Access.ADMIN and not user.is_admin:
        raise ApiError(403, "admin token required")
    return await handler(request)


def caller(request: web.Request) -> User:
    return request[USER]


def owner_scope(request: web.Request) -> str | None:
    """The owner filter for registry calls: None lets an admin see every bot."""
    user = caller(request)
    return None if user.is_admin else user.id


def owned_bot(request: web.Request) -> BotRecord:
    """The {id} bot if the caller may see it; 404 otherwise, same as a missing bot."""
    bot_id = request.match_info["id"]
    try:
        return request.app[REGISTRY].get_bot(bot_id, owner_scope(request))
    except NotFound as error:
        raise not_found(f"bot {bot_id}") from error


def owned_brief(request: web.Request) -> BotBrief:
    """Like `owned_bot`, without decrypting the bot's secrets: for routes that need only
    existence, owner and mode (status, connect, disconnect, delete)."""
    bot_id = request.match_info["id"]
    try:
        return request.app[REGISTRY].bot_brief(bot_id, owner_scope(request))
    except NotFound as error:
        raise not_found(f"bot {bot_id}") from error


def owned_bot_id(request: web.Request) -> str:
    return owned_brief(request).id
