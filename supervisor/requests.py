"""Requests sent to workers (webhook push, send, dead-letter retry) and their answers.

Each request carries an id; the worker's reply with that id wakes the caller.
A worker that never answers gives the caller a failed reply after the
timeout, never a hang.
"""

import asyncio
import logging
from collections.abc import Callable

from shared.messages import NO_WORKER, Reply, Request, failed_reply

logger = logging.getLogger(__name__)


class PendingRequests:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Reply]] = {}

    async def ask(self, bot_id: str, send: Callable[[Request], None], request: Request) -> Reply:
        """Send `request` with `send` and wait for the worker's reply to it."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = future
        send(request)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            logger.warning("bot %s: no answer to %s within %.0f s",
                           bot_id, type(request).__name__, self._timeout)
            return failed_reply(request, bot_id, NO_WORKER,
                                f"bot {bot_id}'s worker did not answer in time", 504)
        finally:
            self._waiting.pop(request.request_id, None)

    def answer(self, reply: Reply) -> None:
        """A worker's reply: wake whoever waits for it (late replies are dropped)."""
        future = self._waiting.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)
