"""A per-bot bound on work in flight on a public route.

The webhook route is public: without a bound, a flood of pushes for one bot
(a misbehaving sender, a replay) holds a request, a worker round trip and up
to 1 MiB of body each, for as long as the worker takes. Past the bound the
route answers 503 with Retry-After at once: the platform retries a push that
was not answered 200 (Feishu event subscription, "push failure retries").
"""

WEBHOOK_MAX_INFLIGHT = 64
"""Default deliveries per bot being handled at once (`webhook_max_inflight`)."""
RETRY_AFTER_S = 1
"""What a refused push's Retry-After asks for, in seconds."""


class InFlight:
    """Counts what each bot has in flight; `enter` refuses past `limit` (>= 1)."""

    def __init__(self, limit: int = WEBHOOK_MAX_INFLIGHT) -> None:
        if limit < 1:
            raise ValueError(f"in-flight limit must be >= 1, got {limit}")
        self.limit = limit
        self._counts: dict[str, int] = {}

    def enter(self, key: str) -> bool:
        """Take a slot for `key`; False (nothing taken) when it already has `limit`."""
        count = self._counts.get(key, 0)
        if count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        """Give back a slot `enter` took."""
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)
