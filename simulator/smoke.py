"""A smoke check anyone can run against a simulator: `python -m simulator.smoke URL`.

It uses only the real lark_oapi SDK and the simulator's HTTP control API (no
larkfleet code): register an app, connect `ws.Client`, push an event, see the
handler get it and the platform record its ACK, drop the connection, and see
the SDK reconnect and receive again. Exit 0 when all of that held.
"""

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable

import lark_oapi as lark
import requests


def _until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: FAILED waiting for {what}")
        time.sleep(0.05)


def run(base_url: str) -> None:
    app_id, secret = f"cli_smoke_{uuid.uuid4().hex[:8]}", "smoke-secret"
    http = requests.Session()

    def control(method: str, path: str, body: dict | None = None) -> dict:
        response = http.request(method, f"{base_url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    control("POST", "/_sim/apps", {"appId": app_id, "appSecret": secret, "pingInterval": 1,
                                   "reconnectInterval": 1, "reconnectNonce": 0})
    received: list[str] = []
    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(lambda data: received.append(data.header.event_id))
        .build()
    )
    client = lark.ws.Client(app_id, secret, event_handler=handler, domain=base_url,
                            log_level=lark.LogLevel.WARNING)
    threading.Thread(target=client.start, daemon=True).start()

    def info() -> dict:
        return control("GET", f"/_sim/apps/{app_id}")

    _until(lambda: info()["connections"] == 1, 15, "the SDK to connect")
    first = control("POST", f"/_sim/apps/{app_id}/events", {"text": "hello"})["eventId"]
    _until(lambda: first in received, 5, "the handler to get the event")
    _until(lambda: any(a["eventId"] == first and a["code"] == 200 for a in info()["acked"]),
           5, "the platform to record the ACK")
    print(f"smoke: connected, event {first} received and ACKed")

    control("POST", f"/_sim/apps/{app_id}/faults", {"drop": True})
    _until(lambda: info()["handshakes"] >= 2 and info()["connections"] == 1, 15,
           "the SDK to reconnect after the drop")
    second = control("POST", f"/_sim/apps/{app_id}/events", {"text": "again"})["eventId"]
    _until(lambda: second in received, 5, "an event after the reconnect")
    print(f"smoke: survived a drop, event {second} received after reconnecting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the simulator, e.g. http://127.0.0.1:18080")
    run(parser.parse_args().url.rstrip("/"))
    print("smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
