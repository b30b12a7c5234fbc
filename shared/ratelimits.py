"""The platform's outbound message limits, and the sliding window both sides count them with.

Published for im-v1 message reply/create (feishu-protocol.md 4.2-4.4): 5 per
second to one user or chat (shared by every bot in it), 50 per second and
1,000 per minute per app. Read conservatively as "at most N within ANY
window of that length" (architecture.md, pacing paragraph): a token bucket
of 5 refilled at 5/s would let 10 through in one second. The worker paces
on these (worker/pacing.py); the simulator refuses past them, as the
platform does, so tests see a breach.
"""

import math
from dataclasses import dataclass

CHAT_LIMIT_CODE = 230020
"""Per-chat send limit refused (HTTP 400)."""
TENANT_LIMIT_CODE = 11232
"""Tenant-level send limit refused (HTTP 400)."""
GATEWAY_LIMIT_CODE = 99991400
"""The API gateway's frequency limit (HTTP 429, with x-ogw-ratelimit-* headers)."""
RATE_LIMIT_CODES = frozenset({GATEWAY_LIMIT_CODE, CHAT_LIMIT_CODE, TENANT_LIMIT_CODE})
RESET_HEADER = "x-ogw-ratelimit-reset"
"""Seconds until the gateway's window resets (an integer, on 99991400 answers)."""
LIMIT_HEADER = "x-ogw-ratelimit-limit"


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: float


CHAT_LIMIT = Limit(5, 1.0)
APP_LIMITS = (Limit(50, 1.0), Limit(1000, 60.0))


class SlidingWindow:
    """At most `limit.count` entries within any `limit.window_s` seconds (monotonic clock).

    An entry may be reserved before its time is known (a request in flight:
    it occupies a place until settled with the time it completed), so
    concurrent senders never exceed the limit however long their calls take.
    """

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._entries: dict[int, float] = {}
        self._next = 0

    def _prune(self, now: float) -> None:
        horizon = now - self.limit.window_s
        for key in [k for k, t in self._entries.items() if t <= horizon]:
            del self._entries[key]

    def wait_s(self, now: float) -> float:
        """Seconds until one more entry fits (0 when it fits now; inf while only
        unsettled entries block it)."""
        self._prune(now)
        excess = len(self._entries) - self.limit.count
        if excess < 0:
            return 0.0
        times = sorted(self._entries.values())
        return max(times[excess] + self.limit.window_s - now, 0.0)

    def reserve(self) -> int:
        """Occupy a place now; settle it with its time once known."""
        self._next += 1
        self._entries[self._next] = math.inf
        return self._next

    def settle(self, key: int, at: float) -> None:
        if key in self._entries:
            self._entries[key] = at

    def record(self, at: float) -> None:
        """An entry whose time is known at once (what the platform counts)."""
        self.settle(self.reserve(), at)

    def idle(self, now: float) -> bool:
        """No entry still counts: the window can be forgotten."""
        self._prune(now)
        return not self._entries
