"""Typed keys for what the app and each request carry."""

from aiohttp import web

from api.fleet import Fleet
from api.routing import Route
from shared.paths import DataPaths
from shared.security import SecurityPolicy
from store import Caller, Store, User

FLEET = web.AppKey("fleet", Fleet)
REGISTRY = web.AppKey("registry", Store)
PATHS = web.AppKey("paths", DataPaths)
ROUTES = web.AppKey("routes", list[Route])
SECURITY = web.AppKey("security", SecurityPolicy)
"""The operator's policy (its `urls.service_port` is this API's port)."""
USER = web.RequestKey("user", User)
"""request[USER]: the authenticated caller (absent on public routes); `is_admin` is true only
for an admin-scoped token of an admin."""
CALLER = web.RequestKey("caller", Caller)
"""request[CALLER]: the token behind request[USER] (its id and scope)."""
