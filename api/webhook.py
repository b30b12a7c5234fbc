"""POST /webhook/feishu/{id}: the platform's push, handed untouched to the bot's worker.

The worker verifies the token and signature and decrypts (it holds the
secrets); this route only finds the bot and bounds the body (1 MiB).
"""

from aiohttp import web

from api.errors import not_found
from api.keys import FLEET, REGISTRY
from api.routing import Access, Route
from store import NotFound


async def feishu_webhook(request: web.Request) -> web.Response:
    bot_id = request.match_info["id"]
    try:
        request.app[REGISTRY].get_bot(bot_id)
    except NotFound as error:
        raise not_found(f"bot {bot_id}") from error
    body = await request.read()
    headers = dict(request.headers.items())
    status, payload, content_type = await request.app[FLEET].deliver_webhook(bot_id, headers, body)
    response = web.Response(status=status, body=payload)
    response.headers["Content-Type"] = content_type
    return response


ROUTES = [
    Route("POST", "/webhook/feishu/{id}", feishu_webhook,
          "Feishu event push for a webhook-mode bot (verified by its worker)",
          None, None, (200, 400, 401, 404, 413, 500, 503), Access.PUBLIC),
]
