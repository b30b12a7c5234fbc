"""What the kernel says a worker's event-loop thread is doing, read from /proc.

A worker whose loop sleeps in epoll_wait is waiting for I/O, not hung; the supervisor
asks this before calling a late beat a hang (supervisor/policy.py, `loop_waits_for_io`),
so an idle worker need not wake just to beat (supervisor/settings.py, `beat_intervals`).

Two files per look, both described in proc(5): /proc/<pid>/task/<tid>/stat (field 3,
the state letter) and /proc/<pid>/task/<tid>/syscall (first field, the number of the
system call the thread is blocked in; "running" while on a CPU). Reading another
process's `syscall` file needs ptrace access to it (PTRACE_MODE_ATTACH_FSCREDS): the
same user and, under Yama's ptrace_scope 1, an ancestor, which the supervisor is (it
started the zygote that forks the workers). Where that fails (a stricter ptrace scope,
a kernel without CONFIG_HAVE_ARCH_TRACEHOOK, an architecture whose numbers are not
listed below) the supervisor finds out once at start-up and the workers keep beating
every `beat_interval`, as before.
"""

from __future__ import annotations

import logging
import os

from supervisor.policy import TaskView, loop_waits_for_io

logger = logging.getLogger(__name__)

EPOLL_WAITS: dict[str, frozenset[int]] = {
    "x86_64": frozenset({232, 281, 441}),  # epoll_wait, epoll_pwait, epoll_pwait2
    "aarch64": frozenset({22, 441}),  # epoll_pwait, epoll_pwait2 (no epoll_wait there)
}
"""System call numbers of the epoll waits, per architecture (the kernel's syscall
tables: arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h)."""


def read_task(pid: int, tid: int) -> TaskView | None:
    """The state and system call of thread `tid` of process `pid`; None when unreadable
    (gone, or no access). Opens both files each time: for a look now and then."""
    files = TaskFiles.open(pid, tid)
    if files is None:
        return None
    try:
        return files.read()
    finally:
        files.close()


class TaskFiles:
    """The two /proc files of one thread, held open and read again with pread.

    A look at 1,000 idle workers every few seconds is a few hundred looks a second:
    opening both files each time cost ~27 us a look, reading held ones ~7 us (the kernel
    builds the text again on every read at offset 0). A held file belongs to the task,
    not to its number: once the worker is gone, reads fail (ESRCH) even if the pid is
    reused.
    """

    def __init__(self, stat_fd: int, syscall_fd: int) -> None:
        self._stat = stat_fd
        self._syscall = syscall_fd

    @classmethod
    def open(cls, pid: int, tid: int) -> TaskFiles | None:
        base = f"/proc/{pid}/task/{tid}/"
        try:
            stat = os.open(base + "stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            syscall = os.open(base + "syscall", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(stat)
            return None
        return cls(stat, syscall)

    def read(self) -> TaskView | None:
        try:
            stat = os.pread(self._stat, 512, 0)
            syscall = os.pread(self._syscall, 64, 0)
            return TaskView(stat.rsplit(b")", 1)[1].split(None, 1)[0].decode(),
                            syscall.split(None, 1)[0].decode())
        except (OSError, IndexError):
            return None

    def close(self) -> None:
        os.close(self._stat)
        os.close(self._syscall)


class ProcLoopProbe:
    """Looks at workers' loop threads in /proc (the supervisor's `LoopProbe` port)."""

    def __init__(self, machine: str | None = None) -> None:
        self._waits = EPOLL_WAITS.get(machine or os.uname().machine, frozenset())
        self._held: dict[int, tuple[int, TaskFiles]] = {}

    def unavailable(self, child_pid: int | None) -> str | None:
        """Why looks cannot be trusted here, or None when they can.

        `child_pid`: a process started the way workers are (the zygote), whose files are
        read as a worker's would be; None when there is none (nothing to try on).
        """
        if not self._waits:
            return f"no epoll system call numbers known for {os.uname().machine}"
        if child_pid is None:
            return "no child process to read"
        task = read_task(child_pid, child_pid)
        if task is None:
            return f"/proc/{child_pid}/task/{child_pid}/syscall cannot be read"
        if task.syscall != "running" and not task.syscall.lstrip("-").isdigit():
            return f"/proc/{child_pid}/task/{child_pid}/syscall reads {task.syscall!r}"
        return None

    def waits_for_io(self, pid: int, tid: int) -> bool:
        """True when thread `tid` of `pid` sleeps in an epoll wait now."""
        held = self._held.get(pid)
        if held is None or held[0] != tid:
            self.forget(pid)
            files = TaskFiles.open(pid, tid)
            if files is None:
                return False
            held = self._held[pid] = (tid, files)
        return loop_waits_for_io(held[1].read(), self._waits)

    def forget(self, pid: int) -> None:
        """The worker `pid` ended: close what was held for it."""
        held = self._held.pop(pid, None)
        if held is not None:
            held[1].close()
