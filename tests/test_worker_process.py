"""Workers are signalled through a pidfd: a reused pid never receives the supervisor's kill.

Real processes: a WorkerProcess forked by the forkserver, and an unrelated
sleeper standing in for the process the kernel gave the worker's pid to.
"""

import signal
import subprocess
import sys
import time

import multiprocess
import pytest

from bench.service import alive, wait_until
from supervisor.worker_process import WorkerProcess
from supervisor.zygote import kill


def _sleep() -> None:
    time.sleep(60)


def started() -> WorkerProcess:
    multiprocess.get_context("forkserver")  # the forkserver module is the one WorkerProcess uses
    process = WorkerProcess(target=_sleep, name="larkfleet-test", daemon=False)
    process.start()
    return process


def test_kill_reaches_the_worker_through_its_pidfd() -> None:
    process = started()
    assert process._popen.pidfd is not None
    kill(process)
    process.join(5)
    assert process.exitcode == -signal.SIGKILL
    kill(process)  # ended: not an error
    popen = process._popen
    process.close()
    assert popen.pidfd is None, "closed with the handle"


def test_a_reused_pid_is_never_signalled() -> None:
    """The zygote reaped the worker, the supervisor has not read its exit code yet, and
    the pid now names another process: a kill must not reach that process."""
    process = started()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process._popen._send_signal(signal.SIGKILL)  # the worker dies, unread
        wait_until(lambda: not alive(process.pid), 5, "the worker to be reaped")
        process._popen.pid = stranger.pid  # what a reused pid looks like to the handle
        kill(process)
        with pytest.raises(subprocess.TimeoutExpired):  # a kill would land well within this
            stranger.wait(0.5)
        process.join(5)
        assert process.exitcode == -signal.SIGKILL
    finally:
        stranger.kill()
        stranger.wait(5)
