"""The SDK's cache of event fragments, without its timer.

lark_oapi's ws.Client keeps the fragments of a split event in an `ExpiringCache`
(lark_oapi/core/cache/expiring_cache.py) whose constructor starts a task that wakes
every 30 s to drop expired entries: one wake of every idle worker each 30 s for a cache
that is empty unless an event is arriving in pieces (strace of an idle worker, see
bench/NOTES.md "Busy bot among 1,000 idle"). This cache has the two methods the client
uses (`get`, `set` with a ttl in seconds) and drops expired entries when it is used
instead, so nothing wakes at rest and an abandoned partial event still goes away.
"""

from __future__ import annotations

import time
from typing import Any


class FragmentCache:
    """Key -> value with a time to live, expired lazily (on `get` and on `set`)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Any, float]] = {}

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    def set(self, key: str, value: Any, ttl: float) -> None:
        now = time.monotonic()
        if self._entries:
            for stale in [k for k, (_, expires) in self._entries.items() if expires < now]:
                del self._entries[stale]
        self._entries[key] = (value, now + ttl)

    def __len__(self) -> int:
        return len(self._entries)


def replace_sdk_cache(client: Any) -> None:
    """Swap `client`'s ExpiringCache for a FragmentCache and stop its timer task."""
    cron = getattr(client._cache, "_cron", None)
    if cron is not None:
        cron.cancel()
    client._cache = FragmentCache()
