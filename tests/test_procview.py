"""The kernel's view of an event loop (supervisor/procview.py), read from the real /proc:
an idle asyncio loop is seen waiting for I/O; a stopped, sleeping-elsewhere or spinning
one is not; and the policy reads the two fields as proc(5) describes them."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from simulator.testing import wait_until
from supervisor.policy import TaskView, loop_waits_for_io
from supervisor.procview import EPOLL_WAITS, ProcLoopProbe, read_task

X86 = EPOLL_WAITS["x86_64"]

needs_proc = pytest.mark.skipif(
    ProcLoopProbe().unavailable(os.getpid()) is not None,
    reason="/proc/<pid>/task/<tid>/syscall not readable or numbers unknown here",
)

IDLE_LOOP = "import asyncio, sys; print(flush=True); asyncio.run(asyncio.sleep(60))"


def test_the_policy_reads_state_and_call_number() -> None:
    assert loop_waits_for_io(TaskView("S", "232"), X86)  # epoll_wait
    assert loop_waits_for_io(TaskView("S", "281"), X86)  # epoll_pwait
    assert not loop_waits_for_io(TaskView("T", "232"), X86), "SIGSTOP keeps the call number"
    assert not loop_waits_for_io(TaskView("t", "232"), X86)
    assert not loop_waits_for_io(TaskView("R", "running"), X86)
    assert not loop_waits_for_io(TaskView("S", "running"), X86)
    assert not loop_waits_for_io(TaskView("S", "230"), X86), "clock_nanosleep: a blocked loop"
    assert not loop_waits_for_io(TaskView("S", "202"), X86), "futex: a blocked loop"
    assert not loop_waits_for_io(TaskView("S", "-1"), X86)
    assert not loop_waits_for_io(TaskView("D", "232"), X86)
    assert not loop_waits_for_io(None, X86), "unreadable proves nothing"
    assert not loop_waits_for_io(TaskView("S", "232"), EPOLL_WAITS["aarch64"])


def test_an_unknown_architecture_is_unavailable() -> None:
    assert ProcLoopProbe(machine="sparc64").unavailable(os.getpid()) is not None
    assert ProcLoopProbe().unavailable(None) is not None


@needs_proc
def test_an_idle_loop_waits_a_stopped_one_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", IDLE_LOOP], stdout=subprocess.PIPE)
    probe = ProcLoopProbe()
    try:
        assert child.stdout is not None
        child.stdout.readline()
        assert probe.unavailable(child.pid) is None
        wait_until(lambda: probe.waits_for_io(child.pid, child.pid), 10, "idle loop in epoll")
        os.kill(child.pid, signal.SIGSTOP)
        wait_until(lambda: (read_task(child.pid, child.pid) or TaskView("", "")).state in "Tt",
                   5, "stopped")
        assert not probe.waits_for_io(child.pid, child.pid)
        os.kill(child.pid, signal.SIGCONT)
        wait_until(lambda: probe.waits_for_io(child.pid, child.pid), 10, "waits again")
    finally:
        child.kill()
        child.wait(5)
    assert not probe.waits_for_io(child.pid, child.pid), "a gone process proves nothing"


@needs_proc
def test_a_thread_blocked_elsewhere_or_spinning_does_not_wait() -> None:
    probe = ProcLoopProbe()
    stop = threading.Event()
    tids: dict[str, int] = {}

    def sleeper() -> None:
        tids["sleep"] = threading.get_native_id()
        stop.wait(30)  # a futex wait: a loop blocked by a handler

    def spinner() -> None:
        tids["spin"] = threading.get_native_id()
        while not stop.is_set():
            sum(range(1000))

    threads = [threading.Thread(target=sleeper), threading.Thread(target=spinner)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(tids) == 2, 5, "threads started")
        wait_until(lambda: (read_task(os.getpid(), tids["sleep"]) or TaskView("", "")).state
                   == "S", 5, "sleeper asleep")
        began = time.monotonic()
        while time.monotonic() - began < 0.2:
            assert not probe.waits_for_io(os.getpid(), tids["sleep"])
            assert not probe.waits_for_io(os.getpid(), tids["spin"])
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
