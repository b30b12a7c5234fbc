"""bench/fleet.py's `wait_connected` against a real service: it follows the events stream,
returns the bots' statuses as the status list gives them and keeps its deadline."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from bench.fleet import ECHO, Fleet
from bench.service import FAST_ENV, free_port
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(120)

TIMEOUT_S = 1.5
SLACK_S = 1.0
"""How far past its deadline a wait may end on a busy 2-core host."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet") / "data", env=FAST_ENV)
    fleet.start()
    try:
        yield fleet
    finally:
        try:
            fleet.stop()
        except subprocess.TimeoutExpired:
            fleet.service.kill()


def test_returns_the_statuses_the_status_list_gives(
        fleet: Fleet, sim_app: Callable[..., SimApp]) -> None:
    app = sim_app()
    [bot_id] = fleet.create_bots([(app.app_id, app.app_secret)], app.url, ECHO)
    fleet.connect([bot_id])
    status = fleet.wait_connected([bot_id], 30)[bot_id]
    assert status["state"] == "connected" and status["pid"]
    assert status.keys() == fleet.statuses()[bot_id].keys(), "the status list's shape"
    began = time.monotonic()
    assert fleet.wait_connected([bot_id], 5)[bot_id]["pid"] == status["pid"]
    assert time.monotonic() - began < 1, "met by the stream's first snapshot"

    os.kill(status["pid"], signal.SIGKILL)
    heard: list[tuple[str, float]] = []
    again = fleet.wait_connected([bot_id], 30, not_pids={bot_id: status["pid"]},
                                 on_ready=lambda b: heard.append((b, time.monotonic())))[bot_id]
    assert again["state"] == "connected" and again["pid"] not in (None, status["pid"])
    [(who, when)] = heard  # once, for the replacement, before the wait returned
    assert who == bot_id and when <= time.monotonic()


def test_a_wait_ends_in_timeout_error_at_its_deadline(fleet: Fleet) -> None:
    """An unknown bot never appears (the stream goes quiet after its snapshot); a bot whose
    platform refuses every connection keeps changing state (the stream is busy): both
    waits end in TimeoutError at the deadline."""
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="1 of 1 bots not connected"):
        fleet.wait_connected(["no-such-bot"], TIMEOUT_S)
    assert TIMEOUT_S <= time.monotonic() - began < TIMEOUT_S + SLACK_S

    nowhere = f"http://127.0.0.1:{free_port()}"
    [bot_id] = fleet.create_bots([("cli_nowhere", "secret-cli_nowhere")], nowhere, ECHO)
    fleet.connect([bot_id])
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="2 of 2 bots not connected"):
        fleet.wait_connected([bot_id, "no-such-bot"], TIMEOUT_S)
    assert TIMEOUT_S <= time.monotonic() - began < TIMEOUT_S + SLACK_S
