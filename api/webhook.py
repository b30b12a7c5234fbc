"""POST /webhook/feishu/{id}: the platform's push, handed untouched to the bot's worker.

The worker verifies the token and signature and decrypts (it holds the
secrets); this route only finds the bot, bounds the body (1 MiB) and the
deliveries in flight per bot (api/inflight.py: 503 with Retry-After past it).
"""

from aiohttp import web

from api.errors import error_response, not_found
from api.inflight import RETRY_AFTER_S, InFlight
from api.keys import FLEET, REGISTRY
from api.routing import Access, Route
from store import NotFound

WEBHOOK_INFLIGHT = web.AppKey("webhook_inflight", InFlight)


async def feishu_webhook(request: web.Request) -> web.Response:
    bot_id = request.match_info["id"]
    try:
        brief = request.app[REGISTRY].bot_brief(bot_id)
    except NotFound as error:
        raise not_found(f"bot {bot_id}") from error
    if brief.use_websocket:
        # Said here, not by the worker: a WebSocket-mode bot has no webhook secrets, so its
        # worker would answer 401 "needs encryptKey", pointing at the wrong fix.
        return error_response(409, f"bot {bot_id} is in WebSocket mode and takes no webhook"
                              " pushes: switch it to webhook mode (useWebSocket: false) to"
                              " use this URL", "not_webhook_mode")
    inflight = request.app[WEBHOOK_INFLIGHT]
    if not inflight.enter(bot_id):
        busy = error_response(503, f"bot {bot_id} has {inflight.limit} webhook deliveries in"
                              " flight; retry later", "busy")
        busy.headers["Retry-After"] = str(RETRY_AFTER_S)
        return busy
    try:
        body = await request.read()
        headers = dict(request.headers.items())
        fleet = request.app[FLEET]
        status, payload, content_type = await fleet.deliver_webhook(bot_id, headers, body)
    finally:
        inflight.leave(bot_id)
    response = web.Response(status=status, body=payload)
    response.headers["Content-Type"] = content_type
    return response


ROUTES = [
    Route("POST", "/webhook/feishu/{id}", feishu_webhook,
          "Feishu event push for a webhook-mode bot (verified by its worker)",
          None, None, (200, 400, 401, 404, 409, 413, 500, 503), Access.PUBLIC),
]
