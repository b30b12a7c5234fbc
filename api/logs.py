"""GET /api/feishu/bots/{id}/logs?tail=N: the last lines of the bot's log file."""

import asyncio
import os
from pathlib import Path

from aiohttp import web

from api.auth import owned_bot
from api.body import query_integer
from api.keys import PATHS
from api.routing import Route

DEFAULT_TAIL = 100
MAX_TAIL = 10_000
_BLOCK = 64 * 1024


def tail_lines(path: Path, count: int) -> bytes:
    """The last `count` lines of the file, reading backwards in blocks (logs reach 10 MB)."""
    if count <= 0:
        return b""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return b""
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position, data = end, b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])


async def bot_logs(request: web.Request) -> web.Response:
    """Plain text; empty while the bot has never run. Secrets are redacted at write time."""
    bot_id = owned_bot(request).config.id
    count = query_integer(request, "tail", DEFAULT_TAIL, 0, MAX_TAIL)
    data = await asyncio.to_thread(tail_lines, request.app[PATHS].bot_log(bot_id), count)
    return web.Response(body=data, content_type="text/plain", charset="utf-8")


ROUTES = [
    Route("GET", "/api/feishu/bots/{id}/logs", bot_logs, "The last lines of the bot's log",
          None, None, (200, 400, 401, 404), content_type="text/plain", query=("tail",)),
]
