"""Outbound pacing: every send and card update waits for room in its chat's and the app's windows.

Replies, API sends and card updates of one bot share these windows
(shared/ratelimits.py: 5 per chat per any second, 50 per app per second,
1,000 per minute), so the bot slows down before the platform refuses.

Order: a chat's sends pass one at a time, first come first served (an
asyncio.Lock wakes its waiters in FIFO order), and the chat stays held
while the call is in flight and while a refused call waits to be retried,
so two messages to one chat never overtake each other. The app's windows
are entered under a second FIFO lock held only while waiting for room.

A place is taken before the call and stamped with the time the call
completed: the platform counted the call somewhere between the two, so the
next call, which starts after the stamp, can never land inside the window
of an earlier one however the network delays them.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from shared.ratelimits import APP_LIMITS, CHAT_LIMIT, Limit, SlidingWindow

log = logging.getLogger(__name__)

POLL_S = 0.02
"""How often a waiter looks again while only calls in flight fill a window."""
MAX_HOLD_S = 60.0
"""The longest a refusal holds a chat or the app (a bigger reset header is capped)."""
PRUNE_AT = 1000
"""Forget idle chats once this many are tracked."""


@dataclass
class _Chat:
    window: SlidingWindow
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    held_until: float = 0.0


class Admission:
    """The places one call took; `done()` stamps them with the call's end."""

    def __init__(self, pacer: "Pacer", keys: list[tuple[SlidingWindow, int]]) -> None:
        self._pacer = pacer
        self._keys = keys

    def done(self) -> None:
        now = self._pacer.clock()
        for window, key in self._keys:
            window.settle(key, now)


class ChatTurn:
    """A chat held for one send (and its retries): `admit()` before each call."""

    def __init__(self, pacer: "Pacer", chat: _Chat) -> None:
        self._pacer = pacer
        self._chat = chat

    async def admit(self) -> Admission:
        """Wait for room in the chat's and the app's windows; take a place in each."""
        pacer, chat = self._pacer, self._chat
        await pacer._room([chat.window], lambda: chat.held_until)
        async with pacer._app_lock:
            await pacer._room(pacer._app_windows, lambda: pacer._app_held_until)
            keys = [(w, w.reserve()) for w in pacer._app_windows]
        keys.append((chat.window, chat.window.reserve()))
        return Admission(pacer, keys)

    def hold_chat(self, seconds: float) -> None:
        """The platform refused this chat (230020): no send to it for `seconds`."""
        self._chat.held_until = max(self._chat.held_until,
                                    self._pacer.clock() + min(seconds, MAX_HOLD_S))

    def hold_app(self, seconds: float) -> None:
        """The platform refused the app (99991400, 11232): no send at all for `seconds`."""
        pacer = self._pacer
        pacer._app_held_until = max(pacer._app_held_until, pacer.clock() + min(seconds, MAX_HOLD_S))


class Pacer:
    """The windows of one bot. Use `async with pacer.turn(chat_key) as turn`."""

    def __init__(
        self,
        chat_limit: Limit = CHAT_LIMIT,
        app_limits: tuple[Limit, ...] = APP_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._chat_limit = chat_limit
        self._chats: dict[str, _Chat] = {}
        self._app_windows = [SlidingWindow(limit) for limit in app_limits]
        self._app_lock = asyncio.Lock()
        self._app_held_until = 0.0
        self.waited_s = 0.0
        """Total seconds sends spent waiting for room (a counter for the logs and bench)."""

    @contextlib.asynccontextmanager
    async def turn(self, chat_key: str) -> AsyncIterator[ChatTurn]:
        """Hold the chat (FIFO) for one send and its retries."""
        chat = self._chats.get(chat_key)
        if chat is None:
            if len(self._chats) >= PRUNE_AT:
                self._prune()
            chat = self._chats[chat_key] = _Chat(SlidingWindow(self._chat_limit))
        chat.users += 1
        try:
            async with chat.lock:
                yield ChatTurn(self, chat)
        finally:
            chat.users -= 1

    async def _room(self, windows: list[SlidingWindow], held: Callable[[], float]) -> None:
        started = self.clock()
        while True:
            now = self.clock()
            delay = max([held() - now, *(w.wait_s(now) for w in windows)])
            if delay <= 0:
                break
            await asyncio.sleep(POLL_S if math.isinf(delay) else delay)
        self.waited_s += self.clock() - started

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, c in self._chats.items() if not c.users and c.window.idle(now)]:
            del self._chats[key]
