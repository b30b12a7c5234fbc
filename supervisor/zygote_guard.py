"""Imported by the zygote (forkserver) before any fork: the zygote takes its workers with it.

The zygote leaves when the supervisor does: multiprocess's forkserver exits on
EOF of its "alive" pipe, whose write end only the supervisor holds (each worker
closes its inherited copy first thing, `worker.liveness.release_zygote`). Here
the zygote becomes the leader of a process group that every worker inherits,
and its exit SIGKILLs that group: workers, a SIGSTOPped one included (SIGKILL
needs no continue), and whatever they started, in the same instant. The
workers' own parent-death signal (PR_SET_PDEATHSIG) covers a zygote that dies
without running its exit handlers.
"""

import atexit
import contextlib
import logging
import os
import signal

logger = logging.getLogger(__name__)


def _take_group() -> int | None:
    """Make the zygote a process group leader; returns its pid, or None if refused."""
    try:
        os.setpgid(0, 0)
    except OSError as error:
        logger.warning("zygote keeps its process group (%s); workers rely on pdeathsig", error)
        return None
    return os.getpid()


def _kill_group(zygote: int) -> None:
    """At the zygote's exit: SIGKILL its group (itself last, by the same call)."""
    if os.getpid() != zygote or os.getpgrp() != zygote:
        return  # a forked child that somehow ran atexit: not ours to do
    with contextlib.suppress(OSError):
        os.killpg(zygote, signal.SIGKILL)
    os._exit(0)


_zygote = _take_group()
if _zygote is not None:
    atexit.register(_kill_group, _zygote)
