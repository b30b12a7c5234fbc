"""A worker process handle that signals its worker through a pidfd, never a bare pid.

The zygote (multiprocess's forkserver), not the supervisor, reaps workers: once
it has, the pid is free for the kernel to hand to an unrelated process while
the supervisor's handle has not yet read the exit code, and `os.kill(pid)`
would hit that process. A pidfd opened while the worker is still unreaped
names that one process for good (pidfd_open(2) and pidfd_send_signal(2),
Linux 5.3+); signalling it after the worker ended is ESRCH, never a stranger.
"""

import contextlib
import io
import logging
import os
import pickle
import signal

from multiprocess import forkserver, popen_forkserver, spawn, util
from multiprocess.connection import wait
from multiprocess.context import ForkServerProcess, set_spawning_popen

logger = logging.getLogger(__name__)


_MAIN_SCRIPT_KEYS = ("init_main_from_path", "init_main_from_name")
"""The preparation data's keys naming the parent's `__main__` (multiprocess/spawn.py
`get_preparation_data`), which the child would import or run again (`prepare`)."""


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
        """multiprocess's own `_launch` (popen_forkserver.py), with three changes: the
        child is not told to re-run the supervisor's main script, the data is written by
        the standard library's C pickler, and a pidfd is opened once the zygote has
        answered with the pid.

        The preparation data names the main script (`larkfleet`) so that a child can
        unpickle objects defined in it, and every worker ran `runpy.run_path` on it after
        the fork: compiled it, searched the path for its imports, a few ms of CPU each.
        (The forkserver can preload `__main__` once instead, but only reads a key the data
        no longer has: CPython gh-126631 / gh-137996, fixed in 3.13's and 3.14's
        multiprocessing, not in multiprocess.) A worker's target and arguments are named by
        module (worker/entry.py, WorkerSpec bytes), so it needs nothing from there.

        multiprocess pickles with dill, whose Pickler is the pure-Python one: 451 us
        against 23 us per fork for the same 1.5 kB, in the supervisor's one thread that
        asks for forks. What a worker's handle holds (a function named by module, bytes,
        the authentication key, which pickles only while `set_spawning_popen` is set)
        needs nothing of dill's, and the child's dill loads a standard pickle.
        """
        prep_data = spawn.get_preparation_data(process_obj._name)
        for key in _MAIN_SCRIPT_KEYS:
            prep_data.pop(key, None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            pickle.dump(prep_data, buf, pickle.HIGHEST_PROTOCOL)
            pickle.dump(process_obj, buf, pickle.HIGHEST_PROTOCOL)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)  # the child's sentinel of this process, as multiprocess keeps it
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)
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
