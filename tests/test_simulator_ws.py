"""The real lark_oapi ws.Client against the simulator: discovery, frames, ACKs, faults."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.ws.exception import ClientException

from simulator.client import SimClientError
from simulator.testing import WsClientThread, wait_until


class Inbox:
    """Collects what the SDK hands the bot's handler."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, data: Any) -> None:
        with self.lock:
            self.events.append(data)

    def event_ids(self) -> list[str]:
        with self.lock:
            return [e.header.event_id for e in self.events]

    def texts(self) -> list[str]:
        with self.lock:
            return [json.loads(e.event.message.content).get("text") for e in self.events]


def _handler(inbox: Inbox) -> Any:
    return (
        lark.EventDispatcherHandler.builder("", "").register_p2_im_message_receive_v1(inbox).build()
    )


@pytest.fixture
def connect(sim) -> Iterator[Callable[..., tuple[WsClientThread, Inbox]]]:
    started: list[WsClientThread] = []

    def make(app, wait: bool = True, secret: str | None = None) -> tuple[WsClientThread, Inbox]:
        inbox = Inbox()
        client = WsClientThread(
            app.app_id,
            secret or app.app_secret,
            sim.url,
            _handler(inbox),
            log_level=lark.LogLevel.WARNING,
        ).start()
        started.append(client)
        if wait:
            wait_until(lambda: app.info()["connections"] >= 1, 5, what="client connected")
        return client, inbox

    yield make
    for client in started:
        client.stop()


def test_discovery_ping_and_events(sim_app, connect) -> None:
    app = sim_app()
    _, inbox = connect(app)
    info = wait_until(lambda: (i := app.info())["pongs"] >= 1 and i, 5, what="a pong")
    assert info["handshakes"] == 1
    assert info["endpointCalls"] == 1

    first = app.push("hello")
    long_text = "fragmented " * 300
    second = app.push(long_text, fragments=3)
    wait_until(lambda: len(app.info()["acked"]) == 2, 5, what="two ACKs")

    assert inbox.event_ids() == [first["eventId"], second["eventId"]]
    assert inbox.texts() == ["hello", long_text]
    acked = app.info()["acked"]
    assert [a["eventId"] for a in acked] == [first["eventId"], second["eventId"]]
    assert all(a["code"] == 200 and isinstance(a["seqId"], int) for a in acked)


def test_drop_reconnects(sim_app, connect) -> None:
    app = sim_app()
    connect(app)
    app.faults(drop=True)
    info = wait_until(
        lambda: (i := app.info())["handshakes"] == 2 and i["connections"] == 1 and i,
        5,
        what="reconnected",
    )
    assert info["endpointCalls"] == 2


def test_invalid_secret_never_connects(sim_app, connect) -> None:
    app = sim_app()
    app.faults(endpoint="invalid_secret")
    client, _ = connect(app, wait=False)
    wait_until(lambda: not client.alive, 5, what="start() raised")
    assert isinstance(client.error, ClientException)
    assert app.info()["handshakes"] == 0


def test_wrong_secret_is_refused(sim_app, connect) -> None:
    app = sim_app()
    client, _ = connect(app, wait=False, secret="nope")
    wait_until(lambda: not client.alive, 5, what="start() raised")
    assert isinstance(client.error, ClientException)
    assert client.error.code == 10003


def test_max_connections_refuses(sim_app, connect) -> None:
    app = sim_app(maxConnections=1)
    connect(app)
    second, _ = connect(app, wait=False)
    wait_until(lambda: not second.alive, 5, what="second client refused")
    assert isinstance(second.error, ClientException)
    assert second.error.code == 514
    info = app.info()
    assert info["connections"] == 1
    assert info["refusedHandshakes"] == 1


def _client_process(app_id: str, secret: str, domain: str, seen: Any) -> None:
    """A second SDK client in its own process: two ws.Clients in one process share the
    SDK's module-level loop (upstream issue #119) and break each other."""
    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(lambda data: seen.put(data.header.event_id))
        .build()
    )
    lark.ws.Client(app_id, secret, event_handler=handler, domain=domain,
                   log_level=lark.LogLevel.WARNING).start()


def test_cluster_mode_one_connection_per_event(sim, sim_app, connect) -> None:
    app = sim_app()
    _, a = connect(app)
    context = multiprocessing.get_context("spawn")
    seen = context.Queue()
    args = (app.app_id, app.app_secret, sim.url, seen)
    other = context.Process(target=_client_process, args=args)
    other.start()
    try:
        wait_until(lambda: app.info()["connections"] == 2, 15, what="two connections")
        pushed = [app.push(f"m{i}")["eventId"] for i in range(12)]
        wait_until(lambda: len(app.info()["acked"]) == 12, 5, what="all ACKed")
        in_other = [seen.get(timeout=5) for _ in range(12 - len(a.event_ids()))]
    finally:
        other.kill()
        other.join(5)
    assert sorted(a.event_ids() + in_other) == sorted(pushed)


def test_blackhole_stops_pongs(sim_app, connect) -> None:
    app = sim_app()
    _, inbox = connect(app)
    wait_until(lambda: app.info()["pongs"] >= 1, 5, what="a pong")
    app.faults(blackhole=True)
    pongs = app.info()["pongs"]
    pings = app.info()["pings"]
    wait_until(lambda: app.info()["pings"] >= pings + 2, 5, what="more pings")
    assert app.info()["pongs"] == pongs
    event = app.push("into the void")
    assert app.info()["connections"] == 1
    app.faults(blackhole=False)
    wait_until(lambda: app.info()["pongs"] > pongs, 5, what="pongs again")
    assert event["eventId"] not in inbox.event_ids()


def test_redelivery_keeps_event_id(sim_app, connect) -> None:
    app = sim_app(ackTimeout=0.5, redeliverSchedule=[0.2, 0.2])
    client, inbox = connect(app)
    app.faults(blackhole=True)
    event = app.push("late")
    app.faults(blackhole=False)
    wait_until(lambda: event["eventId"] in inbox.event_ids(), 5, what="redelivered")
    acked = wait_until(lambda: app.info()["acked"], 5)
    assert acked[0]["eventId"] == event["eventId"] and acked[0]["code"] == 200

    app.redeliver(event["eventId"])
    wait_until(lambda: inbox.event_ids().count(event["eventId"]) == 2, 5, what="explicit")
    again = app.push("same id", eventId=event["eventId"])
    assert again["eventId"] == event["eventId"]
    wait_until(lambda: inbox.event_ids().count(event["eventId"]) == 3, 5, what="re-push")
    # the client has the event before its ACK reaches the simulator: wait for the third
    def three_acks() -> list | None:
        acks = app.info()["acked"]
        return acks if len(acks) >= 3 else None

    acked = wait_until(three_acks, 5, what="the third ACK")
    seq_ids = [a["seqId"] for a in acked]
    assert len(set(seq_ids)) == len(seq_ids) == 3
    assert client.alive


def test_push_without_connection_is_404(sim_app) -> None:
    app = sim_app()
    with pytest.raises(SimClientError) as err:
        app.push("nobody home")
    assert err.value.status == 404


def test_failed_ack_is_redelivered(sim_app, sim) -> None:
    app = sim_app(redeliverSchedule=[0.1])
    calls: list[str] = []

    def flaky(data: Any) -> None:
        calls.append(data.header.event_id)
        if len(calls) == 1:
            raise RuntimeError("handler failed once")

    handler = (
        lark.EventDispatcherHandler.builder("", "").register_p2_im_message_receive_v1(flaky).build()
    )
    with WsClientThread(
        app.app_id, app.app_secret, sim.url, handler, log_level=lark.LogLevel.CRITICAL
    ):
        wait_until(lambda: app.info()["connections"] == 1, 5, what="connected")
        event = app.push("retry me")
        acked = wait_until(lambda: len(a := app.info()["acked"]) == 2 and a, 5, what="2 ACKs")
    assert [a["code"] for a in acked] == [500, 200]
    assert calls == [event["eventId"]] * 2


def test_handshake_forbidden_is_fatal(sim_app, connect) -> None:
    app = sim_app()
    app.faults(handshake="forbidden")
    client, _ = connect(app, wait=False)
    wait_until(lambda: not client.alive, 5, what="start() raised")
    assert isinstance(client.error, ClientException) and client.error.code == 403
