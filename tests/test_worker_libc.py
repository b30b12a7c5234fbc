"""A worker reaches the C library without a library search (worker/libc.py)."""

import ctypes
import ctypes.util
import os
import signal

import pytest

PR_GET_PDEATHSIG = 2
"""From linux/prctl.h."""


def test_parent_death_signal_is_armed_without_running_ldconfig(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ctypes.util.find_library("c")` runs `/sbin/ldconfig -p` in a subprocess on Linux: a
    fork and an exec in every worker at its start. The signal is armed all the same."""
    def searched(name: str) -> None:
        raise AssertionError(f"library search for {name!r}")

    monkeypatch.setattr(ctypes.util, "find_library", searched)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from worker.liveness import die_with_parent

            die_with_parent()
            armed = ctypes.c_int()
            ctypes.CDLL(None).prctl(PR_GET_PDEATHSIG, ctypes.byref(armed))
            code = 0 if armed.value == signal.SIGKILL else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
