"""How a worker notices that its supervisor is gone, and what it reports about itself.

A worker must never outlive the supervisor holding a platform connection
(architecture.md, "Liveness"). Three independent signals cover it: the kernel's
parent-death signal, the parent pid changing, and the supervisor's pings
stopping (which also catches a hung supervisor that is still alive).
"""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the zygote) exits."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as error:
        logger.warning("no parent death signal (%s); relying on supervisor pings", error)


def rss_bytes() -> int:
    """Resident set size from /proc/self/statm: one small read, cheap every second."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


class SupervisorWatch:
    """Ends when the supervisor fell silent for `timeout` s or the parent process changed."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._tick = min(0.5, timeout / 4)
        self._parent = os.getppid()
        self._heard_at = time.monotonic()

    def heard(self) -> None:
        """Any well-formed message from the supervisor proves it is alive."""
        self._heard_at = time.monotonic()

    async def gone(self) -> str:
        """Return why the supervisor is considered gone (never returns while it is alive)."""
        while True:
            await asyncio.sleep(self._tick)
            if os.getppid() != self._parent:
                return f"parent process {self._parent} is gone"
            silent = time.monotonic() - self._heard_at
            if silent > self._timeout:
                return f"no message from the supervisor for {silent:.1f} s"
