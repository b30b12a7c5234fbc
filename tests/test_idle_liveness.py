"""Idle workers do not wake to prove they are alive, and hangs are still found in time.

An idle worker beats every 30 s (worker/beats.py); the supervisor reads in /proc that
its loop sleeps in epoll_wait when the beat is late (supervisor/procview.py). Real
service, real workers, the session's event service (heartbeat timeout 3 s, FAST_ENV).
"""

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor.procview import ProcLoopProbe
from tests.fixtures.events import EventFleet
from tests.fixtures.service import Service, alive, wait_until
from tests.fixtures.sim import SimApp

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(ProcLoopProbe().unavailable(os.getpid()) is not None,
                       reason="/proc cannot show a loop waiting here: workers beat as before"),
]

TIMEOUT = 3.0
"""FAST_ENV's heartbeat timeout."""
BOUND = TIMEOUT + 1.0
"""Hang to kill, as architecture.md's liveness rule and tests/measure_hang.py hold it."""
IDLE_S = 3 * TIMEOUT / 2 + 1
"""Long enough for a worker's beats (every 1.5 s here) to have found nothing new twice."""

HANDLERS = '''
import time


async def block(message):
    time.sleep(120)  # a handler that blocks the worker's event loop


async def spin(message):
    while True:  # a handler that spins it
        pass
'''


@pytest.fixture(scope="module")
def fleet(event_fleet: EventFleet) -> Service:
    (event_fleet.handlers / "idle_liveness.py").write_text(HANDLERS)
    return event_fleet.service


@pytest.fixture
def connected(fleet: Service, sim_app: Callable[..., SimApp]) -> Iterator[
        Callable[..., tuple[str, SimApp, dict]]]:
    """Connect a bot (optional handler); disconnected again after the test (kept, as the
    session's check of every bot's log wants)."""
    made: list[str] = []

    def connect(**fields: object) -> tuple[str, SimApp, dict]:
        app = sim_app(pingInterval=120)  # the platform's: its pings would wake it each second
        bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, **fields)
        made.append(bot_id)
        fleet.connect(bot_id)
        return bot_id, app, fleet.wait_state(bot_id, "connected")

    yield connect
    for bot_id in made:
        fleet.request("POST", f"/api/feishu/bots/{bot_id}/ws/disconnect")


def wakes(pid: int) -> int:
    """Context switches of the worker's main thread (its event loop's) so far."""
    text = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches:" in line)


def replaced(fleet: Service, bot_id: str, pid: int, since: float) -> float:
    """Seconds from `since` until the bot's worker is no longer `pid`."""
    fleet.wait_status(bot_id, lambda s: s["pid"] != pid, 20, "worker replaced")
    return time.monotonic() - since


def hang_recorded(fleet: Service, bot_id: str) -> str:
    """The "no heartbeat" error the bot's history recorded for the kill. The status's own
    error is gone once the replacement connects (a first death restarts at once), so
    reading it after the replacement raced with that connect."""
    def find() -> str | None:
        history = fleet.request("GET", f"/api/feishu/bots/{bot_id}/history").json()
        errors = [entry["error"] for entry in history["timeline"] if entry.get("error")]
        return next((error for error in errors if "no heartbeat" in error), None)

    return wait_until(find, 10, f"{bot_id}: a 'no heartbeat' entry in its history")


def test_an_idle_worker_sleeps_through_many_timeouts_and_stays(
    fleet: Service, connected: Callable[..., tuple[str, SimApp, dict]]
) -> None:
    bot_id, _, status = connected()
    pid = status["pid"]
    time.sleep(IDLE_S)  # the scenario: a bot with nothing to do
    before = wakes(pid)
    time.sleep(4 * TIMEOUT)  # four heartbeat timeouts without a beat
    woke = wakes(pid) - before
    print(f"idle worker: {woke} wakes in {4 * TIMEOUT:g} s")
    status = fleet.status(bot_id)
    assert (status["pid"], status["state"], status["restarts"]) == (pid, "connected", 0)
    assert woke <= 4, f"{woke} wakes in {4 * TIMEOUT:g} s (a beat each 1.5 s would be 8)"
    assert status["lastHeartbeat"], "the supervisor's looks keep lastHeartbeat fresh"


def test_a_stopped_idle_worker_is_killed_within_the_timeout(
    fleet: Service, connected: Callable[..., tuple[str, SimApp, dict]]
) -> None:
    bot_id, _, status = connected()
    pid = status["pid"]
    time.sleep(IDLE_S)  # idle: its next beat is 30 s away
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        took = replaced(fleet, bot_id, pid, stopped)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    print(f"SIGSTOP of an idle worker to replaced: {took:.2f} s")
    assert took <= BOUND + 0.5, took  # + the status poll and the fork of the replacement
    assert hang_recorded(fleet, bot_id)


@pytest.mark.parametrize("handler", ["block", "spin"])
def test_a_handler_that_holds_the_loop_is_a_hang(
    fleet: Service, connected: Callable[..., tuple[str, SimApp, dict]], handler: str
) -> None:
    bot_id, app, status = connected(handler={"kind": "python",
                                             "target": f"idle_liveness:{handler}"})
    pid = status["pid"]
    time.sleep(IDLE_S)  # idle first: the event is what wakes it
    app.push("hold the loop")
    pushed = time.monotonic()
    took = replaced(fleet, bot_id, pid, pushed)
    print(f"{handler} handler to replaced: {took:.2f} s")
    assert took <= BOUND + 0.5, took
    assert hang_recorded(fleet, bot_id)
