"""The platform's send limits, enforced: sends and card updates past them are refused.

Same limits and window as the worker paces on (shared/ratelimits.py): 5 per
chat within any second, 50 per app within any second and 1,000 within any
minute. Past the app's limits the answer is the gateway's 99991400 with HTTP
429 and `x-ogw-ratelimit-*` headers; past a chat's, 230020 with HTTP 400.
Only accepted calls count. Every refusal is recorded (`refusals` in the app's
info) so a test can assert there was none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web

from shared.ratelimits import (
    APP_LIMITS,
    CHAT_LIMIT,
    CHAT_LIMIT_CODE,
    GATEWAY_LIMIT_CODE,
    LIMIT_HEADER,
    RESET_HEADER,
    SlidingWindow,
)
from simulator.state import App


@dataclass
class Windows:
    app: list[SlidingWindow] = field(default_factory=lambda: [SlidingWindow(x) for x in APP_LIMITS])
    chats: dict[str, SlidingWindow] = field(default_factory=dict)


def admit(app: App, chat_id: str, what: str) -> web.Response | None:
    """Count one send or update to `chat_id`; the refusal to answer when it is past a limit."""
    if not app.rate_limits:
        return None
    windows: Windows = app.limits or Windows()
    app.limits = windows
    now = time.monotonic()
    for window in windows.app:
        wait = window.wait_s(now)
        if wait > 0:
            return _refuse(app, chat_id, what, GATEWAY_LIMIT_CODE, 429, wait, window.limit.count,
                           "request trigger frequency limit")
    chat = windows.chats.get(chat_id) if chat_id else None
    if chat_id and chat is None:
        chat = windows.chats[chat_id] = SlidingWindow(CHAT_LIMIT)
    if chat is not None:
        wait = chat.wait_s(now)
        if wait > 0:
            return _refuse(app, chat_id, what, CHAT_LIMIT_CODE, 400, wait, CHAT_LIMIT.count,
                           "The message sending frequency in the chat exceeds the limit")
        chat.record(now)
    for window in windows.app:
        window.record(now)
    return None


def _refuse(app: App, chat_id: str, what: str, code: int, status: int, wait: float,
            limit: int, msg: str) -> web.Response:
    app.refusals.append({"code": code, "chatId": chat_id, "what": what, "at": time.time()})
    headers = {RESET_HEADER: str(max(1, math.ceil(wait))), LIMIT_HEADER: str(limit)}
    return web.json_response({"code": code, "msg": msg, "data": {}}, status=status,
                             headers=headers)
