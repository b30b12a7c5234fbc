"""A worker process handle that signals its worker through a pidfd, never a bare pid.

The zygote (multiprocess's forkserver), not the supervisor, reaps workers: once
it has, the pid is free for the kernel to hand to an unrelated process while
the supervisor's handle has not yet read the exit code, and `os.kill(pid)`
would hit that process. A pidfd opened while the worker is still unreaped
names that one process for good (pidfd_open(2) and pidfd_send_signal(2),
Linux 5.3+); signalling it after the worker ended is ESRCH, never a stranger.
"""

import contextlib
import logging
import os
import signal

from multiprocess import popen_forkserver, util
from multiprocess.connection import wait
from multiprocess.context import ForkServerProcess

logger = logging.getLogger(__name__)


class _PidfdPopen(popen_forkserver.Popen):
    """The forkserver's Popen with a pidfd opened right after the fork.

    Signalling is safe from any thread (the supervisor's last-resort killer
    runs off the loop): it reads no pipe and closes nothing; the pidfd lives
    until `close()` or the handle is collected, so its number is never
    reused under a concurrent signal.
    """

    pidfd: int | None = None
    ended_before_pidfd = False
    """The zygote had already reported the exit when the pidfd was opened."""

    def _launch(self, process_obj: ForkServerProcess) -> None:
        super()._launch(process_obj)
        self.pidfd, self.ended_before_pidfd = _open_pidfd(self.pid, self.sentinel)
        if self.pidfd is not None:
            self._pidfd_finalizer = util.Finalize(self, _close_quietly, (self.pidfd,))

    def _send_signal(self, sig: int) -> None:
        if self.returncode is not None or self.ended_before_pidfd:
            return  # it ended: nothing to signal, and its pid may already be reused
        if self.pidfd is None:
            super()._send_signal(sig)  # no pidfd support in this kernel: the bare pid
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, sig)

    def close(self) -> None:
        if self.pidfd is not None:
            self.pidfd = None
            self._pidfd_finalizer()
        super().close()


class WorkerProcess(ForkServerProcess):
    """A forkserver child whose `kill()` and `terminate()` go through its pidfd."""

    @staticmethod
    def _Popen(process_obj: ForkServerProcess) -> _PidfdPopen:
        return _PidfdPopen(process_obj)


def _open_pidfd(pid: int, sentinel: int) -> tuple[int | None, bool]:
    """(pidfd, ended): a pidfd naming the just-forked `pid`, or None when none can.

    Opened after the fork, so the worker may already have ended: if the
    zygote has reported its exit code on `sentinel` (or the pid is gone), the
    pid may be reused, so no pidfd and `ended` is True. None and False: this
    kernel has no pidfds (signals then go to the bare pid).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None, True
    except OSError as error:
        logger.warning("no pidfd for worker pid %d (%s); signalling by pid", pid, error)
        return None, False
    if wait([sentinel], 0):
        os.close(pidfd)
        return None, True
    return pidfd, False


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
