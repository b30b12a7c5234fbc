"""A fake operating system for the supervisor (supervisor.ports), in the supervisord style.

The supervisor runs its real code over these fakes: FakeProcesses forks
nothing (the test says when a worker says hello, reports, or exits), FakeChannel
records what was sent, FakeClock is moved by hand. The store is the real
SQLite one in a temp directory. Used by the policy tests (tests/test_reconciler.py).
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from shared import exitcodes
from shared.botconfig import BotConfig
from shared.messages import FromWorker, Heartbeat, Hello, StateChanged, Stop, WorkerSpec
from shared.paths import DataPaths
from shared.states import ConnState
from store import SQLiteStore
from supervisor.backoff import BackoffPolicy
from supervisor.ports import ExitHandler
from supervisor.settings import SupervisorSettings
from supervisor.supervisor import Supervisor

T = TypeVar("T")


@dataclass
class FakeWorker:
    pid: int
    spec: WorkerSpec
    on_exit: ExitHandler
    killed: bool = False
    exited: bool = False

    def exit(self, code: int | None) -> None:
        if not self.exited:
            self.exited = True
            self.on_exit(code)


@dataclass
class FakeProcesses:
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    workers: list[FakeWorker] = field(default_factory=list)
    fail_spawns: int = 0
    hold_spawns: asyncio.Event | None = None
    """When set, a spawn has forked (its worker is listed and may talk) but returns only once
    the event is set: the forkserver's answer read after the worker's first messages."""
    _pids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    async def warm_up(self) -> None:
        await self.ready.wait()

    async def spawn(self, spec: WorkerSpec, on_exit: ExitHandler) -> FakeWorker:
        if self.fail_spawns:
            self.fail_spawns -= 1
            raise OSError("fork failed (fake)")
        worker = FakeWorker(next(self._pids), spec, on_exit)
        self.workers.append(worker)
        if self.hold_spawns is not None:
            await self.hold_spawns.wait()
        return worker

    def kill(self, worker: Any) -> None:
        worker.killed = True
        asyncio.get_running_loop().call_soon(worker.exit, -9)

    def zygote_pid(self) -> int | None:
        return 999

    def of(self, bot_id: str) -> list[FakeWorker]:
        return [w for w in self.workers if w.spec.bot.id == bot_id]

    def live(self, bot_id: str | None = None) -> list[FakeWorker]:
        return [w for w in self.workers if not w.exited and bot_id in (None, w.spec.bot.id)]


@dataclass
class FakeChannel:
    sent: list[tuple[bytes, msgspec.Struct]] = field(default_factory=list)
    closed: bool = False

    async def serve(self, handle: Callable[[bytes, FromWorker], None]) -> None:
        await asyncio.Event().wait()

    def send(self, identity: bytes, message: msgspec.Struct) -> None:
        self.sent.append((identity, message))

    def close(self) -> None:
        self.closed = True

    def stops_to(self, worker: FakeWorker) -> int:
        identity = f"{worker.spec.bot.id}:{worker.spec.incarnation}".encode()
        return sum(1 for i, m in self.sent if i == identity and isinstance(m, Stop))


@dataclass
class FakeLoops:
    """The kernel's view of workers' loops (supervisor.ports.LoopProbe): a test says which
    worker pids sleep waiting for I/O; `why_not` set makes /proc unusable at start-up."""

    waiting: set[int] = field(default_factory=set)
    why_not: str | None = None
    looks: list[tuple[int, int]] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)

    def unavailable(self, child_pid: int | None) -> str | None:
        return self.why_not

    def waits_for_io(self, pid: int, tid: int) -> bool:
        self.looks.append((pid, tid))
        return pid in self.waiting

    def forget(self, pid: int) -> None:
        self.forgotten.append(pid)


@dataclass
class FakeClock:
    now: float = 1000.0

    def mono(self) -> float:
        return self.now

    def epoch(self) -> float:
        return 1_700_000_000.0 + self.now


SETTINGS = SupervisorSettings(
    heartbeat_timeout=3.0, start_timeout=10.0, stop_grace=5.0, tick=0.01,
    backoff=BackoffPolicy(base=1.0, cap=60.0),
)


class Rig:
    """A Supervisor over fakes, plus the verbs a test needs to play the OS."""

    def __init__(self, root: Path, settings: SupervisorSettings = SETTINGS) -> None:
        self.paths = DataPaths(root)
        self.paths.ensure()
        self.store = SQLiteStore(self.paths)
        self.owner = self.store.list_users()[0].id
        self.processes = FakeProcesses()
        self.channel = FakeChannel()
        self.clock = FakeClock()
        self.loops = FakeLoops()
        self.supervisor = Supervisor(
            self.paths, self.store, settings,
            processes=self.processes, channel=self.channel, clock=self.clock,
            loops=self.loops,
        )
        self._apps = itertools.count(1)

    def create(self, *, webhook: bool = False, connected: bool = False) -> str:
        config = BotConfig(id="", name="b", app_id=f"cli_{next(self._apps)}", app_secret="s",
                           use_websocket=not webhook)
        bot_id = self.store.create_bot(self.owner, config).config.id
        if connected:
            self.store.set_desired_connected(bot_id, True)
        return bot_id

    async def add(self, *, webhook: bool = False, connected: bool = False) -> str:
        """Create a bot as the API does (store, then the fleet), connected if asked."""
        bot_id = self.create(webhook=webhook)
        await self.supervisor.bot_added(bot_id)
        if connected:
            await self.supervisor.connect(bot_id)
        await self.settle()
        return bot_id

    def phase(self, bot_id: str) -> str:
        return str(self.supervisor._bots[bot_id].phase)

    def state(self, bot_id: str) -> str:
        return str(self.supervisor.status(bot_id).state)

    def worker(self, bot_id: str) -> FakeWorker:
        live = self.processes.live(bot_id)
        assert len(live) == 1, f"{bot_id}: {len(live)} live workers"
        return live[0]

    async def connect_and_report(self, bot_id: str) -> FakeWorker:
        """Connect the bot; its worker says hello and reports connected. Returns the worker."""
        await self.supervisor.connect(bot_id)
        await self.settle()
        worker = self.worker(bot_id)
        self.hello(worker)
        self.report(worker)
        return worker

    def say(self, worker: FakeWorker, message: FromWorker) -> None:
        identity = f"{worker.spec.bot.id}:{worker.spec.incarnation}".encode()
        self.supervisor._on_message(identity, message)

    def hello(self, worker: FakeWorker, loop_tid: int = 0) -> None:
        self.say(worker, Hello(bot_id=worker.spec.bot.id, incarnation=worker.spec.incarnation,
                               pid=worker.pid, loop_tid=loop_tid))

    def report(self, worker: FakeWorker, state: ConnState = ConnState.CONNECTED, **kw: Any) -> None:
        self.say(worker, Heartbeat(bot_id=worker.spec.bot.id,
                                   incarnation=worker.spec.incarnation, state=state, **kw))

    def refuse(self, worker: FakeWorker) -> None:
        """The platform refused for good: the worker reports it and exits PERMANENT."""
        self.say(worker, StateChanged(bot_id=worker.spec.bot.id,
                                      incarnation=worker.spec.incarnation,
                                      state=ConnState.ERROR, error="invalid secret", code=10003,
                                      permanent=True))
        worker.exit(exitcodes.PERMANENT)

    def connected(self, worker: FakeWorker) -> None:
        self.hello(worker)
        self.report(worker)

    async def settle(self) -> None:
        """Let the loop run what is due now (forks, exits, one reconcile pass)."""
        for _ in range(5):
            await asyncio.sleep(0)
        self.supervisor._reconcile()
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        await self.settle()

    async def shutdown(self) -> None:
        """Shut the supervisor down, workers obeying Stop, the clock moving."""
        shutdown = asyncio.create_task(self.supervisor.shutdown())
        for _ in range(50):
            for worker in self.processes.live():
                worker.exit(exitcodes.STOPPED)
            await self.advance(0.5)
            if shutdown.done():
                break
        await asyncio.wait_for(shutdown, 1)

    def close(self) -> None:
        self.store.close()


def run(test: Callable[[Rig], Awaitable[T]], root: Path, ready: bool = True) -> T:
    """Run `test(rig)` on a fresh event loop with the supervisor started (zygote warm)."""

    async def main() -> T:
        rig = Rig(root)
        if ready:
            rig.processes.ready.set()
        starting = asyncio.create_task(rig.supervisor.start())
        await rig.settle()
        try:
            result = await test(rig)
        finally:
            rig.processes.ready.set()
            await starting
            await rig.shutdown()
            rig.close()
        return result

    return asyncio.run(main())
