"""Restart delays: exponential backoff with full jitter, and flapping detection.

Unlike supervisord's FATAL after three tries, a bot is retried forever: a
platform outage must not need a human to bring 500 bots back. The attempt
counter resets only after proven uptime (60 s connected).

Two kinds of failure, two rules:
- A worker that could not connect (platform busy, network down) is retried
  with exponential backoff only. The delay's ceiling is also bounded by how
  long the bot has been failing, so a short outage costs a short wait: after
  an outage of T seconds the bot is back at most about T seconds after the
  platform is (14 s of "system busy" -> back within ~15 s, not a minute).
- A worker that connected and then died counts toward flapping: five such
  crashes within a minute hold the bot at the cap, so a crash loop cannot
  hammer the platform. The first such death after proven uptime (or ever) is
  restarted at once, as any process supervisor does: it is news, not a loop,
  and a jittered wait of up to `base` was most of the time a killed or hung
  worker took to come back (the bench's kill -9 and SIGSTOP figures).
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
    _first_failure: float | None = None
    _crashes: deque[float] = field(default_factory=deque)
    _rng: random.Random = field(default_factory=random.Random)

    def failed(self, now: float, after_connecting: bool = False) -> float:
        """Count one transient failure and return the delay (seconds) before the next start.

        `after_connecting`: the worker had reached `connected` before it ended;
        only those failures count toward flapping.
        """
        self.attempt += 1
        if self._first_failure is None:
            self._first_failure = now
        if after_connecting:
            self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.policy.flap_window:
            self._crashes.popleft()
        if self.flapping:
            return self.policy.cap
        if after_connecting and self.attempt == 1:
            return 0.0
        return self._rng.uniform(0, self.ceiling(now))

    def ceiling(self, now: float) -> float:
        """The largest delay for the current attempt: base * 2^(attempt-1), at most the cap
        and at most the time spent failing so far (never below base). Never overflows."""
        policy = self.policy
        exponent = min(self.attempt - 1, 64)
        outage = now - self._first_failure if self._first_failure is not None else 0.0
        return min(policy.cap, policy.base * 2.0**exponent, max(policy.base, outage))

    @property
    def flapping(self) -> bool:
        return len(self._crashes) >= self.policy.flap_count

    def connected_for(self, seconds: float) -> None:
        """Forget past failures once the connection has proven itself."""
        if seconds >= self.policy.reset_after:
            self.reset()

    def connected(self) -> None:
        """A connection was made: the current outage is over (the attempt count stays)."""
        self._first_failure = None

    def reset(self) -> None:
        self.attempt = 0
        self._first_failure = None
        self._crashes.clear()
