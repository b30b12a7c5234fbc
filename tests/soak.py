"""A seeded random walk against the real `larkfleet serve` and the simulator.

Steps, in random order and sometimes two at once: create, connect, disconnect,
patch and delete bots; kill -9 or SIGSTOP a worker; drop or blackhole a
platform connection; make the endpoint busy or hang; restart the supervisor
(SIGTERM, or kill -9). After every step: the service answers and no request
took longer than its bound. Every few steps (a quiet point: faults lifted,
stopped workers continued) and at the end: within a bound every bot's state
matches its wish, the simulator sees exactly one connection per connected bot
and none for the others, and no worker process is left that belongs to no bot.

    python -m tests.soak --duration 600 [--seed N]     (make soak DURATION=600)

prints the seed first (rerun with --seed to replay the same walk), then one
line per step, then the steps, faults injected and violations. Exit status 1
when any invariant was violated. tests/test_soak.py runs it for a short time.
"""

import argparse
import contextlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.service import alive, process_tree
from simulator.client import SimClient
from simulator.testing import SimulatorThread
from tests.fixtures.service import Service

FAST_APP = {"pingInterval": 1, "reconnectInterval": 1, "reconnectNonce": 0, "ackTimeout": 3}
REQUEST_BOUND = 5 + 2 + 1 + 2
"""FAST_ENV's stop grace, the kill margin and slack: no API call may take longer (s)."""
SETTLE_BOUND = 45.0
"""Faults lifted, a bot reaches its wish within this (hang detection, backoff, flapping)."""
ORPHAN_BOUND = 3.5
"""A killed supervisor's workers are gone within this (test_spine's bound)."""
MAX_BOTS = 4


@dataclass
class Bot:
    bot_id: str
    app_id: str
    wanted: bool = False
    stopped_pids: set[int] = field(default_factory=set)


@dataclass
class Walk:
    seed: int
    root: Path
    sim: SimClient
    sim_url: str
    rng: random.Random = field(init=False)
    service: Service = field(init=False)
    bots: dict[str, Bot] = field(default_factory=dict)
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    _apps: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.service = Service(self.root / "data")

    # -- bookkeeping -----------------------------------------------------------------

    def violate(self, what: str) -> None:
        with self._lock:
            self.violations.append(f"step {self.steps}: {what}")
        print(f"  VIOLATION {what}", flush=True)

    def call(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        """One API call, timed against REQUEST_BOUND; None when it failed to answer."""
        started = time.monotonic()
        try:
            response = self.service.http.request(
                method, f"{self.service.url}{path}", timeout=REQUEST_BOUND + 5, **kw)
        except requests.RequestException as error:
            self.violate(f"{method} {path}: no answer ({type(error).__name__})")
            return None
        took = time.monotonic() - started
        if took > REQUEST_BOUND:
            self.violate(f"{method} {path} took {took:.1f} s (bound {REQUEST_BOUND} s)")
        if response.status_code >= 500:
            self.violate(f"{method} {path} answered {response.status_code}: {response.text}")
        return response

    def pick(self, wanted_only: bool = False) -> Bot | None:
        """A random bot; `wanted_only`: one asked to be connected (where faults bite)."""
        with self._lock:
            bots = [b for b in self.bots.values() if b.wanted or not wanted_only]
        return self.rng.choice(bots) if bots else None

    def status(self, bot: Bot) -> dict[str, Any] | None:
        response = self.call("GET", f"/api/feishu/bots/{bot.bot_id}/ws/status")
        return response.json() if response is not None and response.status_code == 200 else None

    # -- the steps -------------------------------------------------------------------

    def create(self) -> None:
        if len(self.bots) >= MAX_BOTS:
            return self.delete()
        self._apps += 1
        app_id = f"cli_soak_{self.seed}_{self._apps}"
        self.sim.create_app(app_id, f"secret-{app_id}", **FAST_APP)
        response = self.call("POST", "/api/feishu/bots", json={
            "name": app_id, "appId": app_id, "appSecret": f"secret-{app_id}",
            "domain": self.sim_url})
        if response is not None and response.status_code == 201:
            bot_id = response.json()["id"]
            with self._lock:
                self.bots[bot_id] = Bot(bot_id, app_id)
        return None

    def connect(self) -> None:
        if (bot := self.pick()) is not None:
            response = self.call("POST", f"/api/feishu/bots/{bot.bot_id}/ws/connect")
            if response is not None and response.status_code == 202:
                bot.wanted = True

    def disconnect(self) -> None:
        if (bot := self.pick()) is not None:
            response = self.call("POST", f"/api/feishu/bots/{bot.bot_id}/ws/disconnect")
            if response is not None and response.status_code == 200:
                bot.wanted = False

    def patch(self) -> None:
        if (bot := self.pick()) is not None:
            self.call("PATCH", f"/api/feishu/bots/{bot.bot_id}",
                      json={"name": f"renamed-{self.steps}"})

    def delete(self) -> None:
        if (bot := self.pick()) is not None:
            response = self.call("DELETE", f"/api/feishu/bots/{bot.bot_id}")
            if response is not None and response.status_code in (200, 404):
                with self._lock:
                    self.bots.pop(bot.bot_id, None)

    def _worker_pid(self) -> tuple[Bot, int] | None:
        bot = self.pick(wanted_only=True)
        status = self.status(bot) if bot is not None else None
        if bot is None or status is None or not status.get("pid"):
            return None
        return bot, status["pid"]

    def kill9_worker(self) -> None:
        if (found := self._worker_pid()) is not None:
            self.faults["kill -9 worker"] += 1
            _signal(found[1], signal.SIGKILL)

    def sigstop_worker(self) -> None:
        if (found := self._worker_pid()) is not None:
            self.faults["SIGSTOP worker"] += 1
            found[0].stopped_pids.add(found[1])
            _signal(found[1], signal.SIGSTOP)

    def drop(self) -> None:
        if (bot := self.pick(wanted_only=True)) is not None:
            self.faults["drop connection"] += 1
            self.sim.fault(bot.app_id, drop=True)

    def blackhole(self) -> None:
        if (bot := self.pick(wanted_only=True)) is not None:
            self.faults["blackhole"] += 1
            self.sim.fault(bot.app_id, blackhole=True)

    def busy(self) -> None:
        if (bot := self.pick(wanted_only=True)) is not None:
            self.faults["endpoint busy"] += 1
            self.sim.fault(bot.app_id, endpoint="error_5xx")

    def hang(self) -> None:
        if (bot := self.pick(wanted_only=True)) is not None:
            self.faults["endpoint hang"] += 1
            self.sim.fault(bot.app_id, endpoint="hang")

    def restart(self) -> None:
        self.faults["supervisor SIGTERM"] += 1
        workers = self.service.worker_pids()
        code = self.service.stop(REQUEST_BOUND + 10)
        if code != 0:
            self.violate(f"graceful stop exited {code}")
        if left := {p for p in workers if alive(p)}:
            self.violate(f"workers {sorted(left)} outlived a graceful stop")
        self.start()

    def crash(self) -> None:
        self.faults["supervisor kill -9"] += 1
        workers = self.service.worker_pids()
        self.service.kill()
        deadline = time.monotonic() + ORPHAN_BOUND
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left := {p for p in workers if alive(p)}:
            self.violate(f"orphans {sorted(left)} outlived the killed supervisor by "
                         f"{ORPHAN_BOUND} s")
            for pid in left:
                _signal(pid, signal.SIGKILL)
        self.start()

    def start(self) -> None:
        self.service.start()

    STEPS: tuple[tuple[str, int], ...] = (
        ("create", 6), ("connect", 8), ("disconnect", 4), ("patch", 3), ("delete", 2),
        ("kill9_worker", 3), ("sigstop_worker", 2), ("drop", 2), ("blackhole", 1),
        ("busy", 2), ("hang", 1), ("restart", 1), ("crash", 1),
    )
    ALONE = frozenset({"restart", "crash"})

    def step(self) -> None:
        names, weights = zip(*self.STEPS, strict=True)
        first = self.rng.choices(names, weights)[0]
        chosen = [first]
        if first not in self.ALONE and self.rng.random() < 0.3:
            second = self.rng.choices(names, weights)[0]
            if second not in self.ALONE:
                chosen.append(second)
        self.steps += 1
        print(f"step {self.steps}: {' + '.join(chosen)}", flush=True)
        threads = [threading.Thread(target=getattr(self, name)) for name in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.check_answers()

    # -- the invariants ----------------------------------------------------------------

    def check_answers(self) -> None:
        try:
            health = self.service.http.get(f"{self.service.url}/healthz", timeout=2)
            if health.status_code != 200:
                self.violate(f"/healthz answered {health.status_code}")
        except requests.RequestException as error:
            self.violate(f"/healthz did not answer ({type(error).__name__})")

    def quiet_point(self) -> None:
        """Lift every fault, then check that the fleet reaches exactly the wished state."""
        for bot in list(self.bots.values()):
            self.sim.fault(bot.app_id, endpoint="ok", blackhole=False)
            for pid in bot.stopped_pids:
                _signal(pid, signal.SIGCONT)
            bot.stopped_pids.clear()
        deadline = time.monotonic() + SETTLE_BOUND
        pending = self.mismatches()
        while pending and time.monotonic() < deadline:
            time.sleep(0.5)
            pending = self.mismatches()
        for problem in pending:
            self.violate(problem)
        self.check_processes()

    def mismatches(self) -> list[str]:
        problems = []
        for bot in list(self.bots.values()):
            status = self.status(bot)
            if status is None:
                problems.append(f"{bot.bot_id}: no status")
                continue
            state = status["state"]
            held = state == "reconnecting" and status["flapping"]
            if bot.wanted and state != "connected" and not held:
                problems.append(f"{bot.bot_id}: wished connected, is {state}")
            if not bot.wanted and state != "disconnected":
                problems.append(f"{bot.bot_id}: wished disconnected, is {state}")
            connections = self.sim.info(bot.app_id)["connections"]
            if connections != (1 if state == "connected" else 0):
                problems.append(f"{bot.bot_id}: {state} with {connections} platform connections")
        return problems

    def check_processes(self) -> None:
        pids = {s["pid"] for b in list(self.bots.values())
                if (s := self.status(b)) is not None and s.get("pid")}
        process = self.service.process
        assert process is not None
        tree = process_tree()
        workers = {pid for child in tree.get(process.pid, []) for pid in tree.get(child, [])}
        if strays := workers - pids:
            self.violate(f"worker processes {sorted(strays)} belong to no bot")

    def run(self, duration: float, quiet_every: int = 8) -> None:
        self.start()
        end = time.monotonic() + duration
        try:
            while time.monotonic() < end:
                self.step()
                if self.steps % quiet_every == 0:
                    self.quiet_point()
            self.quiet_point()
        finally:
            for bot in self.bots.values():
                for pid in bot.stopped_pids:
                    _signal(pid, signal.SIGCONT)
            if self.service.process is not None and self.service.process.poll() is None:
                self.service.stop(30)

    def report(self) -> str:
        faults = ", ".join(f"{name} {count}" for name, count in sorted(self.faults.items()))
        lines = [f"seed {self.seed}: {self.steps} steps; faults injected: "
                 f"{sum(self.faults.values())} ({faults or 'none'}); "
                 f"violations: {len(self.violations)}"]
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def soak(duration: float, seed: int | None = None, root: Path | None = None) -> Walk:
    """Run the walk for `duration` seconds (plus the final quiet point); returns it."""
    seed = random.randrange(1_000_000) if seed is None else seed
    print(f"soak seed {seed} (replay: --seed {seed})", flush=True)
    with SimulatorThread() as simulator:
        root = root or Path(tempfile.mkdtemp(prefix="larkfleet-soak-"))
        walk = Walk(seed, root, SimClient(simulator.url), simulator.url)
        walk.run(duration)
    print(walk.report(), flush=True)
    return walk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    walk = soak(args.duration, args.seed)
    return 1 if walk.violations else 0


if __name__ == "__main__":
    sys.exit(main())
