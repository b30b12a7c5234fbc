"""Connection control and status: /api/feishu/bots/{id}/ws/* and /api/feishu/ws/status."""

import msgspec
from aiohttp import web

from api.auth import owned_brief, owner_scope
from api.body import json_response
from api.errors import ApiError
from api.keys import FLEET, REGISTRY
from api.routing import Route
from api.schemas import StatusList, WsResult
from shared.status import BotStatus


def _websocket_bot(request: web.Request) -> str:
    """The caller's bot id; a webhook-mode bot has no connection to steer (409, not a lie)."""
    brief = owned_brief(request)
    if not brief.use_websocket:
        raise ApiError(
            409,
            "the bot is in webhook mode and always served; "
            'PATCH {"useWebSocket": true} first, or delete the bot',
            "webhook_mode",
        )
    return brief.id


async def connect(request: web.Request) -> web.Response:
    """Persists the wish (the fleet does) and answers at once; poll ws/status to follow."""
    bot_id = _websocket_bot(request)
    await request.app[FLEET].connect(bot_id)
    return json_response(WsResult(bot_id=bot_id, status="connecting"), 202)


async def disconnect(request: web.Request) -> web.Response:
    """Answers only once the worker is gone and its platform connection closed."""
    bot_id = _websocket_bot(request)
    await request.app[FLEET].disconnect(bot_id)
    return json_response(WsResult(bot_id=bot_id, status="disconnected"))


def _status(request: web.Request, bot_id: str, owner: str) -> BotStatus:
    """The bot's status naming its owner, for every caller that may see the bot (as the
    bot's own record does): a non-admin sees only its own bots, so only its own id."""
    return msgspec.structs.replace(request.app[FLEET].status(bot_id), owner=owner)


async def bot_status(request: web.Request) -> web.Response:
    brief = owned_brief(request)
    return json_response(_status(request, brief.id, brief.owner))


async def all_status(request: web.Request) -> web.Response:
    """Only the caller's bots; an admin sees every bot."""
    pairs = request.app[REGISTRY].bot_ids(owner_scope(request))
    return json_response(StatusList([_status(request, bot_id, owner) for bot_id, owner in pairs]))


ROUTES = [
    Route("POST", "/api/feishu/bots/{id}/ws/connect", connect,
          "Ask for the bot to be connected (persisted across restarts)",
          None, WsResult, (202, 401, 404, 409)),
    Route("POST", "/api/feishu/bots/{id}/ws/disconnect", disconnect,
          "Disconnect; answers once the worker is gone", None, WsResult,
          (200, 401, 404, 409)),
    Route("GET", "/api/feishu/bots/{id}/ws/status", bot_status, "Live status of one bot",
          None, BotStatus, (200, 401, 404)),
    Route("GET", "/api/feishu/ws/status", all_status, "Live status of the caller's bots",
          None, StatusList, (200, 401)),
]
