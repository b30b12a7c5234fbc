"""Restart delays: exponential backoff with full jitter, and flapping detection.

Unlike supervisord's FATAL after three tries, a bot is retried forever: a
platform outage must not need a human to bring 500 bots back. The attempt
counter resets only after proven uptime (60 s connected), and five crashes in
a minute hold the bot at the cap so a crash loop cannot hammer the platform.
"""

import random
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 1.0
    cap: float = 60.0
    reset_after: float = 60.0
    flap_count: int = 5
    flap_window: float = 60.0


@dataclass
class Backoff:
    """The retry state of one bot; all times are time.monotonic() values."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    attempt: int = 0
    _failures: deque[float] = field(default_factory=deque)
    _rng: random.Random = field(default_factory=random.Random)

    def failed(self, now: float) -> float:
        """Count one transient failure and return the delay before the next start."""
        self.attempt += 1
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.policy.flap_window:
            self._failures.popleft()
        ceiling = min(self.policy.cap, self.policy.base * 2 ** (self.attempt - 1))
        if self.flapping:
            return self.policy.cap
        return self._rng.uniform(0, ceiling)

    @property
    def flapping(self) -> bool:
        return len(self._failures) >= self.policy.flap_count

    def connected_for(self, seconds: float) -> None:
        """Forget past failures once the connection has proven itself."""
        if seconds >= self.policy.reset_after:
            self.reset()

    def reset(self) -> None:
        self.attempt = 0
        self._failures.clear()
