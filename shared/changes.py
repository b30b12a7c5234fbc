"""Change records: every change of a bot, announced once, to whoever listens.

The supervisor publishes one `Change` per change of a bot's API state (and one
per change of its counters); its own waiters (disconnect, delete, shutdown,
requests to a starting worker), its log line and any API stream (Server-Sent
Events) all read the same records instead of each being notified by hand.

Listeners subscribe to a `ChangeFeed` and get a `Subscription`: an async
iterator over the records published after they subscribed. Each subscription
has a bounded queue; a listener that falls behind loses the oldest records
(counted in `dropped`), never blocks the publisher or the other listeners, and
can resynchronise from `GET /api/feishu/ws/status`.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from enum import StrEnum

import msgspec

from shared.states import ConnState
from shared.status import BotStatus

DEFAULT_QUEUE = 1024
"""Records a subscription holds before it drops the oldest."""


class ChangeKind(StrEnum):
    STATE = "state"
    """The API state or the supervisor's phase changed (or the bot just appeared)."""
    COUNTERS = "counters"
    """Same state; the worker's counters (events, replies, pending, dead letters) moved."""
    REMOVED = "removed"
    """The bot was deleted; `to_state` is None and no record about it follows."""


class Change(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One change of one bot, as it happened. `at_epoch` is wall-clock seconds."""

    bot_id: str
    owner: str
    kind: ChangeKind
    from_state: ConnState | None
    """None: the supervisor had not reported the bot before."""
    to_state: ConnState | None
    """None: the bot was removed."""
    phase: str
    """The supervisor's phase of the bot's worker after the change (supervisor.lifecycle)."""
    why: str
    at_epoch: float
    status: BotStatus | None = None
    """The bot's full status right after the change (None once removed)."""


class Subscription:
    """The records published since `ChangeFeed.subscribe()`, oldest first, in a bounded queue.

    `async for change in subscription` yields them until the subscription or
    the feed is closed. Use it as a context manager (sync or async) so it is
    closed when the listener leaves.
    """

    def __init__(self, feed: "ChangeFeed", maxsize: int) -> None:
        self._feed = feed
        self._queue: deque[Change] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.closed = False
        self.dropped = 0
        """Records lost because this listener fell behind by more than its queue."""

    def put(self, change: Change) -> None:
        """Called by the feed; never blocks: drops the oldest record when full."""
        if self.closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(change)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> Change | None:
        """The next record; None once closed, or when `timeout` seconds pass without one."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._queue:
                    if self.closed:
                        return None
                    self._ready.clear()
                    await self._ready.wait()
                return self._queue.popleft()
        return None

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; a waiting `get` returns None, iteration ends."""
        self.closed = True
        self._feed.unsubscribe(self)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Change]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Change]:
        while (change := await self.get()) is not None:
            yield change

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class ChangeFeed:
    """Fan-out of change records to subscriptions; publish and subscribe on the event loop."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.published = 0
        self.closed = False

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """A new subscription receiving every record published from now on.

        After `close()` the subscription comes back already closed (iteration ends at once).
        """
        subscription = Subscription(self, maxsize)
        if self.closed:
            subscription.closed = True
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, change: Change) -> None:
        """Hand `change` to every subscription; O(listeners), never blocks."""
        self.published += 1
        for subscription in tuple(self._subscriptions):
            subscription.put(change)

    def close(self) -> None:
        """End every subscription (shutdown): their iterations finish."""
        self.closed = True
        for subscription in tuple(self._subscriptions):
            subscription.close()

    def listeners(self) -> int:
        return len(self._subscriptions)
