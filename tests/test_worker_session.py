"""The worker's connection side: real worker processes, real ZeroMQ, the real SDK.

The test plays supervisor (tests/worker_harness.py) and asserts what the
worker says over the control channel, how it exits, and what the simulated
platform saw. Workers are forked from the supervisor's real zygote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import exitcodes
from shared.botconfig import BotConfig
from shared.messages import (
    Deliver,
    DeliverResult,
    Heartbeat,
    Hello,
    Send,
    SendResult,
    StateChanged,
    Stop,
)
from shared.states import ConnState
from simulator.testing import wait_until
from supervisor.zygote import Zygote
from tests.fixtures.sim import SimApp
from tests.worker_harness import (
    REPO,
    ModuleWorker,
    SupervisorStandIn,
    Worker,
    ZygoteWorker,
    stand_in,
    wait_exit,
    warm_zygote,
)

pytestmark = pytest.mark.timeout(60)

BOOT = 20.0
"""Fork to Hello/connected, generous for a loaded CI machine."""


@pytest.fixture(scope="module")
def zygote() -> Zygote:
    return warm_zygote()


@pytest.fixture
def supervisor() -> Iterator[SupervisorStandIn]:
    with stand_in() as supervisor:
        yield supervisor


@pytest.fixture
def launch(zygote: Zygote, supervisor: SupervisorStandIn) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(spec: Any, module: bool = False) -> Worker:
        if module:
            worker: Worker = ModuleWorker(supervisor.write_spec(spec))
        else:
            worker = ZygoteWorker(zygote.spawn(spec))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def bot_for(app: SimApp, **fields: Any) -> BotConfig:
    values: dict[str, Any] = {
        "id": app.app_id.replace("cli_", "bot_"),
        "name": "test bot",
        "app_id": app.app_id,
        "app_secret": app.app_secret,
        "domain": app.url,
    }
    return BotConfig(**{**values, **fields})


def state_is(state: ConnState) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, StateChanged) and m.state == state


def connect(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], app: SimApp, **spec: Any
) -> tuple[Any, Worker]:
    spec_ = supervisor.spec(bot_for(app), **spec)
    worker = launch(spec_)
    supervisor.wait_for(state_is(ConnState.CONNECTED), BOOT, "StateChanged connected")
    return spec_, worker


PONG_HELD = 2.5
"""Seconds the simulator holds each pong: the window a premature `connected` would show in."""


def test_reports_connected_only_after_handshake_and_first_pong(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    """Until the simulator has sent its first pong, the worker says `connecting`, never more.

    The pong is held back (`pongDelay`) so the handshake is done well before it:
    each poll reads the worker's messages first and the simulator's pong count
    second, so a `connected` seen while no pong had left came before the pong.
    """
    app = sim_app()
    app.faults(pongDelay=PONG_HELD)
    spec = supervisor.spec(bot_for(app), heartbeat_interval=0.2)
    worker = launch(spec)
    shaken_at: int | None = None
    before_pong: list[Any] = []
    deadline = time.monotonic() + BOOT + PONG_HELD
    while True:
        received = supervisor.messages()
        info = app.info()
        if info["pongs"] >= 1:
            break
        before_pong = received
        assert not any(state_is(ConnState.CONNECTED)(m) for m in received), (
            f"connected reported before the first pong; platform saw {info}"
        )
        if shaken_at is None and info["handshakes"] >= 1:
            shaken_at = len(received)
        assert time.monotonic() < deadline, f"no pong within the boot time: {info}"
        time.sleep(0.02)
    assert shaken_at is not None, "the handshake was seen before the pong"
    after_handshake = [m for m in before_pong[shaken_at:] if isinstance(m, Heartbeat)]
    assert after_handshake and {m.state for m in after_handshake} == {ConnState.CONNECTING}

    supervisor.wait_for(state_is(ConnState.CONNECTED), 5, "StateChanged connected")
    info = app.info()
    assert (info["handshakes"], info["connections"], info["endpointCalls"]) == (1, 1, 1)

    received = supervisor.messages()
    assert isinstance(received[0], Hello) and received[0].pid == worker.pid
    first = next(
        i for i, m in enumerate(received) if getattr(m, "state", None) == ConnState.CONNECTED
    )
    early = [m for m in received[:first] if isinstance(m, Heartbeat)]
    assert early and {m.state for m in early} == {ConnState.CONNECTING}

    assert isinstance(received[first], StateChanged), "the state moves in one message"
    beat = received[first - 1]  # the fields that come with it, just before, on the old state
    assert isinstance(beat, Heartbeat) and beat.state == ConnState.CONNECTING
    assert beat.connected_epoch is not None
    assert abs(time.time() - beat.connected_epoch) < 60
    assert beat.private_bytes == 0, "private memory is first read a minute after the start"
    assert (beat.bot_id, beat.incarnation) == (spec.bot.id, spec.incarnation)

    log = supervisor.paths.bot_log(spec.bot.id).read_text()
    assert "connected" in log
    assert app.app_secret not in log


def test_dropped_connection_reports_reconnecting_and_exits_transient(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    _, worker = connect(supervisor, launch, app)
    app.faults(drop=True)
    change = supervisor.wait_for(state_is(ConnState.RECONNECTING), 10, "reconnecting")
    assert isinstance(change, StateChanged) and not change.permanent and change.error
    assert worker.wait(10) == exitcodes.TRANSIENT
    assert app.info()["endpointCalls"] == 1, "the worker must not reconnect by itself"


def test_blackholed_platform_is_noticed_within_three_ping_intervals(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(pingInterval=1)
    _, worker = connect(supervisor, launch, app, silence_pings=3)
    app.faults(blackhole=True)
    code, took = wait_exit(worker, 15)
    assert code == exitcodes.TRANSIENT
    assert took < 3 * 1 + 2.5
    change = supervisor.wait_for(state_is(ConnState.RECONNECTING), 1, "reconnecting")
    assert isinstance(change, StateChanged) and "no frame" in (change.error or "")


def test_invalid_secret_is_permanent_with_the_platform_code(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    wrong = "wrong-secret-0123456789"
    spec = supervisor.spec(bot_for(app, app_secret=wrong))
    worker = launch(spec)
    assert worker.wait(BOOT) == exitcodes.PERMANENT
    change = supervisor.wait_for(state_is(ConnState.ERROR), 1, "error")
    assert isinstance(change, StateChanged) and change.permanent
    assert change.code == 10003 and "invalid" in (change.error or "")
    assert not any(state_is(ConnState.CONNECTED)(m) for m in supervisor.messages())
    first_error = next(m for m in supervisor.messages() if getattr(m, "state", None) == "error")
    assert first_error is change, "the state moves with its error text, not in a heartbeat"
    assert app.info()["endpointCalls"] == 1
    assert wrong not in supervisor.paths.bot_log(spec.bot.id).read_text()


def test_connection_limit_refusal_is_permanent(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(maxConnections=0)
    worker = launch(supervisor.spec(bot_for(app)))
    assert worker.wait(BOOT) == exitcodes.PERMANENT
    change = supervisor.wait_for(state_is(ConnState.ERROR), 1, "error")
    assert isinstance(change, StateChanged) and change.permanent and change.code == 514
    assert app.info()["refusedHandshakes"] == 1


def test_hanging_endpoint_is_bounded_by_endpoint_timeout(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    app.faults(endpoint="hang")
    try:
        worker = launch(supervisor.spec(bot_for(app), endpoint_timeout=2))
        supervisor.wait_for(lambda m: isinstance(m, Hello), BOOT, "hello")
        code, took = wait_exit(worker, 15)
        assert code == exitcodes.TRANSIENT
        assert took < 2 + 2.5
        change = supervisor.wait_for(state_is(ConnState.RECONNECTING), 1, "reconnecting")
        assert isinstance(change, StateChanged) and "timed out" in (change.error or "")
    finally:
        app.faults(endpoint="ok")


def test_stop_closes_the_connection_and_exits_zero(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    spec, worker = connect(supervisor, launch, app)
    supervisor.send(spec, Stop(grace=5))
    code, took = wait_exit(worker, 10)
    assert code == exitcodes.STOPPED and took < 5
    wait_until(lambda: app.info()["connections"] == 0, 5, what="connection closed")


def test_silent_supervisor_makes_the_worker_leave(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    _, worker = connect(supervisor, launch, app, supervisor_timeout=3)
    supervisor.pinging.clear()
    code, took = wait_exit(worker, 15)
    assert code == exitcodes.SUPERVISOR_GONE
    assert took < 3 + 1 + 2
    wait_until(lambda: app.info()["connections"] == 0, 5, what="connection closed")


def test_malformed_control_messages_are_dropped(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    spec, worker = connect(supervisor, launch, app, heartbeat_interval=0.2)  # two beats: 0.4 s
    seen = len(supervisor.messages())
    supervisor.send_raw(spec, b"\xff\x00 not msgpack", b"\x81\xa1t\xa4nope", b"")
    log = supervisor.paths.bot_log(spec.bot.id)
    wait_until(lambda: log.read_text().count("malformed") == 3, 5, what="three drops logged")
    wait_until(
        lambda: sum(isinstance(m, Heartbeat) for m in supervisor.messages()[seen:]) >= 2,
        5,
        what="heartbeats after the garbage",
    )
    assert worker.wait(0) is None
    supervisor.send(spec, Stop(grace=5))
    assert worker.wait(10) == exitcodes.STOPPED


def test_send_goes_out_through_the_bot(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker], sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    spec, _ = connect(supervisor, launch, app)
    supervisor.send(
        spec, Send(request_id="s1", receive_id="ou_alice", receive_id_type="open_id", text="hi")
    )
    result = supervisor.wait_for(lambda m: isinstance(m, SendResult), 10, "a SendResult")
    assert isinstance(result, SendResult) and result.request_id == "s1"
    assert result.ok and result.message_id
    assert [m["receiveId"] for m in app.sent()] == ["ou_alice"]


def test_worker_dies_with_its_parent(
    supervisor: SupervisorStandIn, sim_app: Callable[..., SimApp]
) -> None:
    """The parent death signal, not the supervisor's silence: pings keep coming here,
    and the worker is SIGSTOPped, so it could not act on anything itself."""
    app = sim_app()
    spec = supervisor.spec(bot_for(app), supervisor_timeout=30)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(supervisor.write_spec(spec))],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    pid = 0
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        supervisor.wait_for(state_is(ConnState.CONNECTED), BOOT, "StateChanged connected")
        os.kill(pid, signal.SIGSTOP)
        parent.kill()
        parent.wait(5)
        wait_until(lambda: not alive(pid), 1.0, what="the orphaned worker to die", interval=0.01)
        wait_until(lambda: app.info()["connections"] == 0, 5, what="connection closed")
    finally:
        parent.kill()
        parent.wait(5)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "worker", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 may not reap it here)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_webhook_bot_reports_webhook_and_serves_deliveries(
    supervisor: SupervisorStandIn, launch: Callable[..., Worker]
) -> None:
    bot = BotConfig(
        id=f"bot_webhook_{os.getpid()}",
        name="webhook bot",
        app_id="cli_webhook",
        app_secret="webhook-secret-0123",
        verification_token="vtoken-0123",
        use_websocket=False,
    )
    spec = supervisor.spec(bot)
    worker = launch(spec, module=True)
    supervisor.wait_for(state_is(ConnState.WEBHOOK), BOOT, "StateChanged webhook")
    supervisor.wait_for(
        lambda m: isinstance(m, Heartbeat) and m.state == ConnState.WEBHOOK, 5, "webhook heartbeat"
    )
    challenge = {"challenge": "abc123", "token": "vtoken-0123", "type": "url_verification"}
    supervisor.send(
        spec,
        Deliver(
            request_id="r1",
            headers={"Content-Type": "application/json"},
            body=json.dumps(challenge).encode(),
        ),
    )
    result = supervisor.wait_for(lambda m: isinstance(m, DeliverResult), 10, "a DeliverResult")
    assert isinstance(result, DeliverResult) and result.request_id == "r1"
    assert result.status == 200 and b"abc123" in result.body

    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(10) == exitcodes.STOPPED
    assert bot.app_secret not in supervisor.paths.bot_log(bot.id).read_text()
