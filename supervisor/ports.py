"""The operating system as the supervisor sees it: processes, the control channel, clocks.

The supervisor takes these as parameters, so its whole policy runs against a
fake in tests (every phase x event, without forking anything), and the real
ones below are thin: the zygote forks, the router carries messages, `time`
tells the time.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol, cast

import msgspec
from multiprocess.process import BaseProcess

from shared.messages import FromWorker, WorkerSpec
from supervisor.zygote import Zygote, kill

logger = logging.getLogger(__name__)

ExitHandler = Callable[[int | None], None]
"""Called once on the event loop when a worker ends, with its exit code (None: unknown)."""


class Worker(Protocol):
    @property
    def pid(self) -> int | None: ...


class Processes(Protocol):
    async def warm_up(self) -> None:
        """Get ready to fork (blocking work off the loop); raises if it cannot."""

    async def spawn(self, spec: WorkerSpec, on_exit: ExitHandler) -> Worker:
        """Start a worker for `spec`; `on_exit` fires once when it ends. Raises on failure."""

    def kill(self, worker: Worker) -> None:
        """SIGKILL; a worker that already ended is not an error."""

    def zygote_pid(self) -> int | None:
        """The process workers are forked from, once warm (None: none, or not yet)."""


class LoopProbe(Protocol):
    """The kernel's view of workers' event loops (supervisor/procview.py)."""

    def unavailable(self, child_pid: int | None) -> str | None:
        """Why looks cannot be trusted on this host (None: they can); asked once."""

    def waits_for_io(self, pid: int, tid: int) -> bool:
        """True when thread `tid` of worker `pid` sleeps waiting for I/O now."""

    def forget(self, pid: int) -> None:
        """Worker `pid` ended: let go of whatever was kept to look at it."""


class Channel(Protocol):
    async def serve(self, handle: Callable[[bytes, FromWorker], None]) -> None:
        """Receive forever, handing each message to `handle`."""

    def send(self, identity: bytes, message: msgspec.Struct) -> None:
        """Queue a message for one worker; never blocks."""

    def close(self) -> None: ...


class Clock(Protocol):
    def mono(self) -> float:
        """Seconds on a clock that never jumps (deadlines, durations)."""

    def epoch(self) -> float:
        """Wall-clock seconds since 1970 (what the API shows)."""


class SystemClock:
    def mono(self) -> float:
        return time.monotonic()

    def epoch(self) -> float:
        return time.time()


class ZygoteProcesses:
    """Workers forked from the zygote; exits seen through each process's sentinel."""

    def __init__(self) -> None:
        self._zygote = Zygote()
        self._ready = asyncio.Event()

    async def warm_up(self) -> None:
        await asyncio.to_thread(self._zygote.warm_up)
        self._ready.set()

    async def spawn(self, spec: WorkerSpec, on_exit: ExitHandler) -> BaseProcess:
        await self._ready.wait()
        process = await asyncio.to_thread(self._zygote.spawn, spec)
        loop = asyncio.get_running_loop()

        def reap() -> None:
            loop.remove_reader(process.sentinel)
            try:
                code = process.exitcode
            except (EOFError, OSError):
                code = None
            on_exit(code)

        loop.add_reader(process.sentinel, reap)
        return process

    def kill(self, worker: Worker) -> None:
        kill(cast(BaseProcess, worker))

    def zygote_pid(self) -> int | None:
        return self._zygote.pid()
