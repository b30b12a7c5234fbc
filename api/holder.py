"""Cluster mode: requests that need a bot's worker or files go to the node holding it.

Status is answered by every node from the state the holder publishes in
PostgreSQL (one row per bot, written on change), so listing a fleet costs no
hop. Logs, history, dead letters, sends and webhook pushes need the worker or
the holder's disk, so they are forwarded, verbatim (the caller's token
included: the holder authenticates and checks ownership itself, against the
same database), to the holder's internal API address from the node table.
A forwarded request carries X-Larkfleet-Forwarded-By and is never forwarded
again, so two nodes that briefly disagree cannot bounce it between them.
"""

import re

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from api.errors import ApiError
from api.keys import FLEET

FORWARDED_BY = "X-Larkfleet-Forwarded-By"
FORWARD_TIMEOUT = 30.0
"""Seconds; above the supervisor's request timeout, so the holder's answer wins."""

_HELD_PATHS = re.compile(
    r"^/(?:api/feishu/bots/(?P<bot>[^/]+)/(?:logs|history|messages|dead-letters(?:/.*)?)"
    r"|webhook/feishu/(?P<hook>[^/]+))$"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host",
               "content-length", "te", "trailer", "proxy-authorization"}
SESSION = web.AppKey("holder_session", aiohttp.ClientSession)


@web.middleware
async def holder_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = _HELD_PATHS.match(request.path)
    if match is None or FORWARDED_BY in request.headers:
        return await handler(request)
    fleet = request.app[FLEET]
    bot_id = match["bot"] or match["hook"]
    address = await fleet.holder_address(bot_id)
    if not address:
        return await handler(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    headers[FORWARDED_BY] = fleet.node_id
    session = request.app.get(SESSION)
    if session is None or session.closed:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT))
        request.app[SESSION] = session
    try:
        async with session.request(request.method, address.rstrip("/") + request.path_qs,
                                   headers=headers, data=await request.read()) as answer:
            body = await answer.read()
            content_type = answer.headers.get("Content-Type")
            response = web.Response(status=answer.status, body=body)
            if content_type:
                response.headers["Content-Type"] = content_type
            return response
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiError(503, f"bot {bot_id} is held by another node, unreachable at"
                            f" {address} ({type(error).__name__})") from error


async def close_session(app: web.Application) -> None:
    session = app.get(SESSION)
    if session is not None:
        await session.close()
