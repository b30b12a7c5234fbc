"""Plays the supervisor for worker tests: a real ROUTER, real worker processes.

Workers are forked from the supervisor's own zygote (the production path,
including the SDK's module-level loop inherited over fork), or started as
`python -m worker SPEC`. A helper thread owns the ROUTER socket: it records
every decoded message, pings each worker every second while pinging is on,
and sends whatever the test queued.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pytest
import zmq

from shared import messages
from shared.botconfig import BotConfig
from shared.messages import FromWorker, Ping, WorkerSpec, worker_identity
from shared.paths import DataPaths
from supervisor.zygote import Zygote
from tests.fixtures.service import FAST_ENV

REPO = Path(__file__).resolve().parents[1]
PING_EVERY = 1.0


class Worker(Protocol):
    pid: int | None

    def wait(self, timeout: float) -> int | None: ...

    def kill(self) -> None: ...


class ZygoteWorker:
    """A worker forked from the supervisor's zygote (multiprocess forkserver)."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int | None = process.pid

    def wait(self, timeout: float) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    def kill(self) -> None:
        if self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
            self._process.join(5)


class ModuleWorker:
    """A worker started as `python -m worker SPEC`."""

    def __init__(self, spec_file: Path) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "worker", str(spec_file)], cwd=REPO)
        self.pid: int | None = self._process.pid

    def wait(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._process.wait(timeout)
        return None

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)


class SupervisorStandIn:
    """The ROUTER end of the control channel, driven from one helper thread."""

    def __init__(self) -> None:
        # ipc paths are limited to ~107 bytes: keep the data dir short.
        self.root = Path(tempfile.mkdtemp(prefix="lfw-"))
        self.paths = DataPaths(self.root / "data")
        self.paths.ensure()
        self.pinging = threading.Event()
        self.pinging.set()
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(self.paths.control_endpoint)
        self._outbox: queue.SimpleQueue[tuple[bytes, bytes]] = queue.SimpleQueue()
        self._received: list[FromWorker] = []
        self._peers: set[bytes] = set()
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="supervisor-stand-in", daemon=True)
        self._thread.start()

    def spec(self, bot: BotConfig, incarnation: int = 1, **overrides: Any) -> WorkerSpec:
        return WorkerSpec(
            bot=bot,
            incarnation=incarnation,
            data_dir=str(self.paths.root),
            control_endpoint=self.paths.control_endpoint,
            **overrides,
        )

    def write_spec(self, spec: WorkerSpec) -> Path:
        path = self.root / f"{spec.bot.id}-{spec.incarnation}.msgpack"
        path.write_bytes(messages.encode(spec))
        return path

    def messages(self, bot_id: str | None = None) -> list[FromWorker]:
        with self._lock:
            return [m for m in self._received if bot_id is None or m.bot_id == bot_id]

    def wait_for(
        self, predicate: Callable[[FromWorker], bool], timeout: float, what: str
    ) -> FromWorker:
        """The first received message matching `predicate`, polling until the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s; got {self.messages()}")
            time.sleep(0.02)

    def send(self, spec: WorkerSpec, message: msgspec.Struct) -> None:
        self.send_raw(spec, messages.encode(message))

    def send_raw(self, spec: WorkerSpec, *frames: bytes) -> None:
        identity = worker_identity(spec.bot.id, spec.incarnation)
        for frame in frames:
            self._outbox.put((identity, frame))

    def close(self) -> None:
        self._running = False
        self._thread.join(5)
        self._socket.close(0)
        self._ctx.term()
        shutil.rmtree(self.root, ignore_errors=True)

    def _serve(self) -> None:
        next_ping = time.monotonic()
        while self._running:
            if self._socket.poll(20):
                identity, payload = self._socket.recv_multipart()
                self._peers.add(identity)
                with self._lock:
                    self._received.append(messages.decode_from_worker(payload))
            while not self._outbox.empty():
                identity, frame = self._outbox.get()
                self._socket.send_multipart([identity, frame])
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + PING_EVERY
                if self.pinging.is_set():
                    for peer in self._peers:
                        self._socket.send_multipart([peer, messages.encode(Ping())])


def wait_exit(worker: Worker, timeout: float) -> tuple[int | None, float]:
    """The worker's exit code and how long it took to appear."""
    start = time.monotonic()
    code = worker.wait(timeout)
    return code, time.monotonic() - start


@contextlib.contextmanager
def stand_in() -> Iterator[SupervisorStandIn]:
    supervisor = SupervisorStandIn()
    try:
        yield supervisor
    finally:
        supervisor.close()


def warm_zygote() -> Zygote:
    """A started zygote in this process, preloaded as the test suite's services are
    (`FAST_ENV`): the forkserver takes its environment when it starts, so the variables
    are set for the start only."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in FAST_ENV.items():
            env.setenv(name, value)
        zygote = Zygote()
        zygote.warm_up()
    return zygote
