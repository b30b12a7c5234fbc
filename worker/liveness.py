"""How a worker notices that its supervisor is gone, and what it reports about itself.

A worker must never outlive the supervisor holding a platform connection
(architecture.md, "Liveness"). The immediate path: the supervisor's death
closes the zygote's "alive" pipe, the zygote exits and SIGKILLs its process
group (`supervisor.zygote_guard`), and the kernel's parent-death signal kills
each worker whose zygote is gone. Two slower signals stay as a net: the parent
pid changing, and the supervisor's pings stopping (which also catches a hung
supervisor that is still alive).
"""

import asyncio
import ctypes
import logging
import os
import select
import signal
import time

from multiprocess import forkserver

from worker import libc

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the zygote) exits."""
    try:
        if libc.load().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as error:
        logger.warning("no parent death signal (%s); relying on supervisor pings", error)


def release_zygote() -> bool:
    """Close the zygote's "alive" pipe inherited over the fork; False if the zygote is gone.

    multiprocess's forkserver hands every child a copy of the pipe's write end
    (multiprocess/forkserver.py, `_serve_one`) and exits only on EOF, so a
    worker holding it keeps the zygote, and with it the parent-death signal,
    from ever firing. Call after `die_with_parent`: a zygote that died before
    the signal was armed shows as POLLERR on the write end (no reader left).
    Returns True outside a forkserver child (`python -m worker`).
    """
    server = forkserver._forkserver
    fd = server._forkserver_alive_fd
    if fd is None:
        return True
    server._forkserver_alive_fd = None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return not any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    finally:
        os.close(fd)


MEMORY_RESAMPLE_S = 60.0
"""A worker that did something resamples its private memory after this long (seconds)."""
MEMORY_RESAMPLE_AT_REST_S = 600.0
"""An idle worker's memory barely moves: resampled after this long (seconds)."""


class PrivateMemory:
    """This process's private memory (USS: Private_Clean + Private_Dirty), sampled rarely.

    RSS would count the pages shared copy-on-write with the zygote (about 190 MB per
    worker, the same pages for all), so an alert on it fires for every bot. USS counts
    what this worker alone holds. Reading /proc/self/smaps_rollup walks the page tables
    (about 2 ms in a worker, against 0.01 ms for statm): once a minute, that read was 40 %
    of an idle worker's CPU (perf, 300 idle workers). So the value is resampled after
    `every` seconds only while the worker did something since the last sample (its
    `activity` changed), and after `every_at_rest` seconds when it did not: an idle
    worker's memory barely moves.

    The first sample waits `every` seconds too (0 is reported until then): at a worker's
    start the walk covers every page table entry it inherited from the zygote (~50,000),
    and a 1,000-bot connect spent ~6 % of the host's CPU on these reads (perf, bench/NOTES.md
    "Connect at N = 1,000"); a value taken before the worker did anything says little.
    """

    def __init__(self, every: float = MEMORY_RESAMPLE_S,
                 every_at_rest: float = MEMORY_RESAMPLE_AT_REST_S) -> None:
        self._every = every
        self._every_at_rest = every_at_rest
        self._sampled_mono = time.monotonic()
        self._sampled = False
        self._activity: object = None
        self._bytes = 0

    def bytes(self, activity: object = None) -> int:
        """The last sample in bytes (0 before the first, or where /proc cannot tell),
        resampled when stale.

        `activity`: any comparable summary of the work done so far (state, counters);
        the sample is stale after `every` s when it differs from the one of the last
        sample (or this is the first), after `every_at_rest` s when it does not.
        """
        now = time.monotonic()
        fresh_work = not self._sampled or activity != self._activity
        every = self._every if fresh_work else self._every_at_rest
        if now - self._sampled_mono < every:
            return self._bytes
        self._sampled_mono, self._sampled, self._activity = now, True, activity
        self._bytes = _uss_bytes()
        return self._bytes


def _uss_bytes() -> int:
    try:
        with open("/proc/self/smaps_rollup", "rb") as rollup:
            fields = dict(line.split(b":", 1) for line in rollup.read().splitlines()[1:])
        return sum(int(fields[k].split()[0]) for k in (b"Private_Clean", b"Private_Dirty")) * 1024
    except (OSError, ValueError, KeyError, IndexError):
        return 0


class SupervisorWatch:
    """Ends when the supervisor fell silent for `timeout` s or the parent process changed."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._tick = min(0.5, timeout / 4)
        self._parent = os.getppid()
        self._alive_mono = time.monotonic()

    def seen_alive(self) -> None:
        """Any well-formed message (or beat) from the supervisor proves it is alive."""
        self._alive_mono = time.monotonic()

    def check(self) -> str | None:
        """Why the supervisor is considered gone now, or None while it is alive."""
        if os.getppid() != self._parent:
            return f"parent process {self._parent} is gone"
        silent = time.monotonic() - self._alive_mono
        if silent > self._timeout:
            return f"no word from the supervisor for {silent:.1f} s"
        return None

    async def gone(self) -> str:
        """Return why the supervisor is considered gone (never returns while it is alive).

        Only where there is no liveness board: with one, the beat loop calls `check`.
        """
        while True:
            await asyncio.sleep(self._tick)
            reason = self.check()
            if reason is not None:
                return reason
