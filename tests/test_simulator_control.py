"""Control API input checking, the CLI entry point, and a standalone simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from simulator.client import SimClient, SimClientError
from simulator.testing import SimulatorThread, wait_until


def test_health(sim) -> None:
    assert requests.get(sim.url + "/_sim/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/_sim/apps", {"appId": "cli_x"}, "appSecret"),
        ("/_sim/apps", {"appId": "cli_x", "appSecret": "s", "pingInterval": 0}, "pingInterval"),
        ("/_sim/apps", {"appId": "cli_x", "appSecret": "s", "bogus": 1}, "bogus"),
    ],
)
def test_bad_create_names_field(sim, path: str, body: dict, field: str) -> None:
    resp = requests.post(sim.url + path, json=body, timeout=5)
    assert resp.status_code == 400
    assert field in resp.json()["error"]


def test_text_that_is_not_utf8_is_400_naming_the_field(sim) -> None:
    resp = requests.post(sim.url + "/_sim/apps", data=b'{"appId":"\xff","appSecret":"s"}',
                         timeout=5)
    assert resp.status_code == 400 and "$.appId" in resp.json()["error"]


def test_bad_event_and_fault_input(sim_app) -> None:
    app = sim_app()
    base = f"{app.url}/_sim/apps/{app.app_id}"
    resp = requests.post(base + "/events", json={"text": "x", "fragments": "3"}, timeout=5)
    assert resp.status_code == 400 and "fragments" in resp.json()["error"]
    resp = requests.post(base + "/events", json={"text": "x", "chatType": "room"}, timeout=5)
    assert resp.status_code == 400 and "chatType" in resp.json()["error"]
    resp = requests.post(base + "/faults", json={"endpoint": "sometimes"}, timeout=5)
    assert resp.status_code == 400 and "endpoint" in resp.json()["error"]
    resp = requests.post(base + "/faults", data=b"{nope", timeout=5)
    assert resp.status_code == 400 and "error" in resp.json()


def test_unknown_app_and_duplicate(sim_app, sim_client: SimClient) -> None:
    for call in (
        lambda: sim_client.info("cli_missing"),
        lambda: sim_client.sent("cli_missing"),
        lambda: sim_client.push_event("cli_missing", "x"),
        lambda: sim_client.fault("cli_missing", drop=True),
    ):
        with pytest.raises(SimClientError) as err:
            call()
        assert err.value.status == 404
    app = sim_app()
    with pytest.raises(SimClientError) as err:
        sim_client.create_app(app.app_id, "other")
    assert err.value.status == 409


def test_endpoint_faults_and_hang_release() -> None:
    with SimulatorThread() as sim:
        client = SimClient(sim.url)
        client.create_app("cli_ep", "s")
        url = sim.url + "/callback/ws/endpoint"
        body = {"AppID": "cli_ep", "AppSecret": "s"}
        ok = requests.post(url, json=body, timeout=5).json()
        assert ok["code"] == 0
        assert ok["data"]["ClientConfig"] == {
            "PingInterval": 120,
            "ReconnectCount": -1,
            "ReconnectInterval": 120,
            "ReconnectNonce": 30,
        }
        assert "device_id=" in ok["data"]["URL"] and "service_id=" in ok["data"]["URL"]
        client.fault("cli_ep", endpoint="error_5xx")
        assert requests.post(url, json=body, timeout=5).status_code == 503
        client.fault("cli_ep", endpoint="hang")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(url, json=body, timeout=0.3)
        client.fault("cli_ep", endpoint="ok")
        assert requests.post(url, json=body, timeout=5).json()["code"] == 0
        client.fault("cli_ep", endpoint="hang")
        outcome: list[object] = []

        def hung_call() -> None:
            try:
                outcome.append(requests.post(url, json=body, timeout=10).status_code)
            except requests.exceptions.RequestException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=hung_call)
        waiter.start()
        wait_until(lambda: client.info("cli_ep")["endpointCalls"] == 5, 5, what="hung call")
        started = time.monotonic()
    waiter.join(10)
    assert outcome and time.monotonic() - started < 5
    assert outcome[0] != 200


def test_cli_prints_port_and_exits_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "sim", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("larkfleet simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(url + "/_sim/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
