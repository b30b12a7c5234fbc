"""When a worker's liveness beat runs: often while it works, rarely once it is idle.

Each beat of an idle worker is a wake of an otherwise sleeping process (~150 us of CPU,
cold caches), and 1,000 idle workers' wakes were what slowed the one busy bot among them
(bench/NOTES.md, "Busy bot among 1,000 idle"). Where the supervisor can see in /proc
that an idle loop sleeps in epoll_wait, it does not need those beats
(supervisor/procview.py), and the spec's `idle_beat_interval` is long. But a loop that
works is not asleep there, so from the moment the worker does something (an event, a
command from the supervisor, a state change: `poke`) the beat comes every `interval`
again, until a beat finds nothing new since the one before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class BeatTimer:
    """Runs `beat` on the loop every `interval` s while active, every `idle_interval` s
    once idle. `beat` returns whether it found something new (the worker's figures
    changed), or None to stop beating."""

    def __init__(self, beat: Callable[[], bool | None], interval: float,
                 idle_interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._idle_interval = idle_interval  # never below `interval`: the supervisor's
        # SupervisorSettings.beat_intervals makes both, and its lateness test relies on them
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.Handle | None = None
        self._idle = False
        self._poked = False

    def start(self) -> None:
        """The first beat at once."""
        self._handle = self._loop.call_soon(self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def poke(self) -> None:
        """The worker does something (call on the loop): beat within `interval` again.

        Cheap enough for every event: a flag, and a timer moved only on the first poke
        after the worker went idle. That poke beats at once (the loop is awake anyway, so
        it costs no wake): the supervisor's last proof of life for an idle worker may be
        4 s old (a look in /proc), and a loop busy from now on is no longer seen asleep.
        A beat with nothing new and no poke since it went before goes idle again.
        """
        self._poked = True  # work since the last beat: the next one is not the idle one
        if self._idle and self._handle is not None:
            self._idle = False
            self._handle.cancel()
            self._handle = self._loop.call_soon(self._fire)

    @property
    def idle(self) -> bool:
        """The next beat is the idle one."""
        return self._idle

    def _fire(self) -> None:
        self._handle = None
        news = self._beat()
        if news is None:
            return
        active = news or self._poked
        self._poked = False
        self._idle = not active
        delay = self._interval if active else self._idle_interval
        self._handle = self._loop.call_later(delay, self._fire)
