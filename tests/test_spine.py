"""The spine end to end: real supervisor, zygote, workers, ZeroMQ, SQLite and SDK.

Each test drives `larkfleet serve` through its HTTP API against the simulator
and asserts what the platform saw, not only what the API says.
"""

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.service import Service, alive, wait_until
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One supervisor shared by the tests that do not stop it: a 2 s endpoint timeout (the
    hanging endpoint), a 0.1 s backoff base (five crashes in seconds), a 1 s request
    timeout (a send the worker cannot answer)."""
    env = {"LARKFLEET_ENDPOINT_TIMEOUT": "2", "LARKFLEET_BACKOFF_BASE": "0.1",
           "LARKFLEET_REQUEST_TIMEOUT": "1"}
    service = Service(tmp_path_factory.mktemp("spine") / "data", env=env).start()
    yield service
    assert service.stop() == 0


def connected_bot(fleet: Service, app: SimApp) -> tuple[str, dict]:
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url)
    fleet.connect(bot_id)
    return bot_id, fleet.wait_state(bot_id, "connected")


def test_connect_reports_connected_only_with_one_live_platform_connection(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, status = connected_bot(fleet, app)
    info = app.info()
    assert info["connections"] == 1
    assert info["handshakes"] == 1
    assert status["pid"] and status["connectedAt"]
    first = status["lastHeartbeat"]
    fleet.wait_status(bot_id, lambda s: s["lastHeartbeat"] != first, 5, "a newer heartbeat")


def test_kill_9_worker_is_restarted_and_counted(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, status = connected_bot(fleet, app)
    os.kill(status["pid"], signal.SIGKILL)
    after = fleet.wait_status(
        bot_id,
        lambda s: s["state"] == "connected" and s["pid"] not in (None, status["pid"]),
        15,
        "a new connected worker",
    )
    assert after["restarts"] == status["restarts"] + 1
    wait_until(lambda: app.info()["connections"] == 1, 10, "one live connection")


def test_stopped_worker_is_found_hung_and_replaced(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, status = connected_bot(fleet, app)
    os.kill(status["pid"], signal.SIGSTOP)
    try:
        fleet.wait_status(
            bot_id,
            lambda s: s["state"] == "connected" and s["pid"] != status["pid"],
            20,
            "a replacement for the stopped worker",
        )
        wait_until(lambda: not alive(status["pid"]), 5, "the supervisor to kill the hung worker")
    finally:
        if alive(status["pid"]):  # only when the assertions above failed
            os.kill(status["pid"], signal.SIGKILL)


def test_blackholed_connection_is_noticed_and_reopened(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    app.faults(blackhole=True)
    wait_until(lambda: app.info()["handshakes"] >= 2 or
               fleet.status(bot_id)["state"] != "connected", 10, "the silence to be noticed")
    app.faults(blackhole=False)
    fleet.wait_status(
        bot_id,
        lambda s: s["state"] == "connected" and app.info()["handshakes"] >= 2,
        20,
        "a new connection",
    )


def test_invalid_secret_is_a_permanent_error_without_retries(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id = fleet.create_bot(app.app_id, "wrong-secret", app.url)
    fleet.connect(bot_id)
    status = fleet.wait_state(bot_id, "error")
    assert status["error"]
    assert status["errorCode"] not in (None, 0)
    calls = app.info()["endpointCalls"]
    assert calls == 1
    log = fleet.request("GET", f"/api/feishu/bots/{bot_id}/logs?tail=200").text
    assert "wrong-secret" not in log
    with pytest.raises(TimeoutError):
        fleet.wait_status(bot_id, lambda s: s["state"] != "error", 3, "a retry")
    assert app.info()["endpointCalls"] == calls, "no retry at all"


def test_hanging_endpoint_is_bounded_and_retried(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    app.faults(endpoint="hang")
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url)
    fleet.connect(bot_id)
    fleet.wait_state(bot_id, "reconnecting", 15)
    wait_until(lambda: app.info()["endpointCalls"] >= 2, 20, "a second endpoint call")
    app.faults(endpoint="ok")
    fleet.wait_state(bot_id, "connected", 40)


def test_disconnect_closes_the_platform_connection(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, status = connected_bot(fleet, app)
    response = fleet.request("POST", f"/api/feishu/bots/{bot_id}/ws/disconnect")
    assert response.status_code == 200
    assert response.json() == {"success": True, "botId": bot_id, "status": "disconnected"}
    assert not alive(status["pid"])
    assert fleet.status(bot_id)["state"] == "disconnected"
    wait_until(lambda: app.info()["connections"] == 0, 5, "the platform to see the close")


def test_twenty_bots_connect_concurrently(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    apps = [sim_app() for _ in range(20)]
    bot_ids = [fleet.create_bot(a.app_id, a.app_secret, a.url) for a in apps]
    for bot_id in bot_ids:
        fleet.connect(bot_id)
    for bot_id in bot_ids:
        fleet.wait_state(bot_id, "connected", 60)
    assert all(a.info()["connections"] == 1 for a in apps)
    for bot_id in bot_ids:
        assert fleet.request("DELETE", f"/api/feishu/bots/{bot_id}").status_code == 200
    wait_until(lambda: all(a.info()["connections"] == 0 for a in apps), 15, "all closed")


def test_sigterm_stops_every_worker_and_restart_brings_desired_bots_back(
    tmp_path: Path, sim_app: Callable[..., SimApp]
) -> None:
    data = tmp_path / "data"
    service = Service(data).start()
    apps = [sim_app() for _ in range(3)]
    bot_ids = [service.create_bot(a.app_id, a.app_secret, a.url) for a in apps]
    for bot_id in bot_ids[:2]:
        service.connect(bot_id)
        service.wait_state(bot_id, "connected")
    workers = service.worker_pids()
    assert len(workers) == 2
    assert service.stop() == 0
    assert not any(alive(pid) for pid in workers)
    wait_until(lambda: all(a.info()["connections"] == 0 for a in apps), 5, "connections closed")
    assert [a.info()["handshakes"] for a in apps] == [1, 1, 0], "nothing restarts while stopping"

    restarted = Service(data).start()
    try:
        for bot_id in bot_ids[:2]:
            restarted.wait_state(bot_id, "connected")
        assert restarted.status(bot_ids[2])["state"] == "disconnected"
        assert apps[2].info()["handshakes"] == 0
    finally:
        assert restarted.stop() == 0


def test_workers_leave_within_1s_when_the_supervisor_is_killed(
    tmp_path: Path, sim_app: Callable[..., SimApp]
) -> None:
    """kill -9 of the supervisor takes the zygote and every worker within 1 s, a worker
    that is SIGSTOPped at that moment included (no ping timeout, no continue needed)."""
    service = Service(tmp_path / "data").start()
    apps = [sim_app(), sim_app()]
    bot_ids = [service.create_bot(a.app_id, a.app_secret, a.url) for a in apps]
    for bot_id in bot_ids:
        service.connect(bot_id)
    stopped = service.wait_state(bot_ids[0], "connected")["pid"]
    service.wait_state(bot_ids[1], "connected")
    fleet = service.fleet_pids()
    assert stopped in fleet and len(fleet) == 3, "the zygote and two workers"
    os.kill(stopped, signal.SIGSTOP)
    try:
        service.kill()
        wait_until(lambda: not any(alive(pid) for pid in fleet), 1.0, "orphans to exit",
                   interval=0.01)
    finally:
        for pid in fleet:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    wait_until(lambda: all(a.info()["connections"] == 0 for a in apps), 3,
               "the platform to see the close")


def test_a_crash_looping_bot_is_held_visibly_and_never_touches_another(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    """Flapping is for a worker that crash-loops after connecting (failures to connect only
    back off: tests/test_control_plane.py)."""
    flaky_app, steady_app = sim_app(), sim_app()
    flaky, _ = connected_bot(fleet, flaky_app)
    steady, before = connected_bot(fleet, steady_app)
    killed: set[int] = set()
    for crash in range(5):
        status = fleet.wait_status(
            flaky, lambda s: s["state"] == "connected" and s["pid"] not in (None, *killed),
            15, f"a new connected worker to kill ({crash})")
        os.kill(status["pid"], signal.SIGKILL)
        killed.add(status["pid"])
    held = fleet.wait_status(flaky, lambda s: s["flapping"], 10, "the flapping hold")
    assert held["state"] == "reconnecting" and held["nextRetryAt"]
    assert held["restarts"] == 5

    after = fleet.status(steady)
    assert (after["state"], after["pid"], after["restarts"]) == ("connected", before["pid"], 0)
    steady_app.push("still here")
    wait_until(lambda: steady_app.sent(), 10, "the steady bot to answer")

    fleet.connect(flaky)
    fleet.wait_state(flaky, "connected")
    assert not fleet.status(flaky)["flapping"], "a connect call lifts the hold"


def test_a_send_the_worker_does_not_answer_in_time_is_504_and_safe_to_retry(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    """Not 409 "not running": the worker may still send it. The uuid the server chose
    (none was given) makes the client's retry a no-op on the platform."""
    app = sim_app()
    bot_id, status = connected_bot(fleet, app)
    path = f"/api/feishu/bots/{bot_id}/messages"
    body = {"receiveId": "ou_alice", "receiveIdType": "open_id", "text": "once"}
    os.kill(status["pid"], signal.SIGSTOP)
    try:
        late = fleet.request("POST", path, json=body)
    finally:
        os.kill(status["pid"], signal.SIGCONT)
    assert late.status_code == 504, late.text
    error = late.json()["error"]
    assert error["code"] == "outcome_unknown"
    uuid = re.search(r"retry with uuid (\S+),", error["message"]).group(1)
    wait_until(lambda: len(app.sent()) == 1, 5, "the late send to go out")
    retried = fleet.request("POST", path, json={**body, "uuid": uuid})
    assert retried.status_code == 200, retried.text
    assert retried.json()["uuid"] == uuid
    shown = [s for s in app.sent() if not s.get("duplicate")]
    assert [s["uuid"] for s in shown] == [uuid], "the retry showed nothing twice"
    assert retried.json()["messageId"] == shown[0]["messageId"]
    assert fleet.status(bot_id)["pid"] == status["pid"], "no restart was needed"
