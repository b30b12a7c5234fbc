"""The audit log: every change made through the API, and GET /api/audit to read it.

A middleware outside the error handler sees each finished request, so every
mutation is recorded with how it ended, refusals included: when (epoch s),
who (the caller's user id, `anonymous` without a valid token), what (method
and route, e.g. `POST /api/feishu/bots/{id}/ws/connect`), on what (the ids in
the path, or the id a creation answered) and the outcome (`ok`, `denied 403`,
`refused 409`, `failed 500`). Bodies are never read here, so no secret can
reach an entry. Each entry is also one line in the supervisor log. Webhook
pushes (the platform's, not a user's) are not changes of the registry and
are left out; reads are not recorded.
"""

import json
import logging
import time

from aiohttp import web

from api.auth import READ_METHODS
from api.body import json_response, query_integer
from api.errors import Handler
from api.keys import REGISTRY, USER
from api.routing import Access, Route
from api.schemas import AuditList, AuditView
from shared.clocks import iso

logger = logging.getLogger("larkfleet.audit")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return f"denied {status}"
    if status < 500:
        return f"refused {status}"
    return f"failed {status}"


def _target(request: web.Request, response: web.StreamResponse | None) -> str:
    ids = [value for value in request.match_info.values() if value]
    if not ids and isinstance(response, web.Response) and response.status == 201:
        try:
            created = json.loads(response.body or b"{}")  # type: ignore[arg-type]
        except (TypeError, ValueError):
            created = {}
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            ids = [created["id"]]
    return "/".join(ids) or "-"


def _action(request: web.Request) -> str:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return f"{request.method} {path}"


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every API change after it finished; a failure to record is logged, not raised."""
    if request.method in READ_METHODS or not request.path.startswith("/api/"):
        return await handler(request)
    response: web.StreamResponse | None = None
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        user = request.get(USER)
        entry = (time.time(), user.id if user is not None else "anonymous", _action(request),
                 _target(request, response), _outcome(status))
        logger.info("audit: actor=%s action=%r target=%s outcome=%s", *entry[1:])
        try:
            request.app[REGISTRY].record_audit(*entry)
        except Exception:
            logger.exception("could not record the audit entry %r", entry[1:])


async def list_audit(request: web.Request) -> web.Response:
    """GET /api/audit?limit=N&before=ID: newest first; `next` pages on."""
    limit = query_integer(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    before = query_integer(request, "before", None, 1)
    entries = request.app[REGISTRY].audit_entries(limit, before)
    views = [AuditView(id=e.id, at=iso(e.at) or "", actor=e.actor, action=e.action,
                       target=e.target, outcome=e.outcome) for e in entries]
    next_page = entries[-1].id if len(entries) == limit else None
    return json_response(AuditList(entries=views, next=next_page))


ROUTES = [
    Route("GET", "/api/audit", list_audit,
          "Every change made through the API, newest first (never a secret)",
          None, AuditList, (200, 400, 401, 403), Access.ADMIN, query=("limit", "before")),
]
