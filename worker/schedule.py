"""Which spooled event may run next: arrival order per chat, retries at their time.

The spool stays the record; this is its in-memory index, loaded once when the
worker starts and fed as events are spooled. Picking the next event is O(1)
however large the backlog, where asking SQLite for every chat's oldest
pending row on each wake cost time in proportion to the backlog.

A chat is in exactly one place: `_ready` (its head may run), `_waiting` (its
head waits for a retry), or taken (its head is running).
"""

import heapq
from collections import deque


class Schedule:
    def __init__(self) -> None:
        self._chats: dict[str, deque[str]] = {}
        self._ready: deque[str] = deque()
        self._waiting: list[tuple[float, str]] = []

    def add(self, chat_key: str, event_id: str, due: float = 0.0) -> None:
        """Queue an event behind its chat's earlier ones; `due` matters for a chat's first."""
        queue = self._chats.get(chat_key)
        if queue is not None:
            queue.append(event_id)
            return
        self._chats[chat_key] = deque([event_id])
        if due > 0.0:
            heapq.heappush(self._waiting, (due, chat_key))
        else:
            self._ready.append(chat_key)

    def take(self, now: float) -> tuple[str, str] | None:
        """The next (chat, event) allowed to run; its chat is held until done or retry."""
        while self._waiting and self._waiting[0][0] <= now:
            self._ready.append(heapq.heappop(self._waiting)[1])
        if not self._ready:
            return None
        chat_key = self._ready.popleft()
        return chat_key, self._chats[chat_key][0]

    def done(self, chat_key: str) -> None:
        """The chat's head is finished (done or dead): the next one may run."""
        queue = self._chats[chat_key]
        queue.popleft()
        if queue:
            self._ready.append(chat_key)
        else:
            del self._chats[chat_key]

    def retry(self, chat_key: str, due: float) -> None:
        """The chat's head failed and runs again at `due`; the chat waits with it."""
        heapq.heappush(self._waiting, (due, chat_key))

    def next_due(self) -> float | None:
        """When the earliest waiting retry is due (wall clock), if any."""
        return self._waiting[0][0] if self._waiting else None
