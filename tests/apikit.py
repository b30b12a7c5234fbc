"""Helpers for the API tests: the real app and registry on a thread, a stand-in fleet.

FakeFleet stands in for the Supervisor (the only thing behind api.fleet.Fleet);
everything else is real: aiohttp over TCP, SQLite, Fernet, the middlewares.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from api.app import create_app
from shared.changes import DEFAULT_QUEUE, ChangeFeed, Subscription
from shared.counts import EventCounts
from shared.messages import Histogram, RetryResult, SendResult
from shared.paths import DataPaths
from shared.security import SecurityPolicy
from shared.states import ConnState
from shared.status import BotMetrics, BotStatus
from shared.urlpolicy import UrlPolicy
from store import Store, open_store

APP_SECRET = "app-secret-0f1e2d3c4b5a"
VERIFICATION_TOKEN = "verif-token-99887766"
ENCRYPT_KEY = "encrypt-key-55443322"
HANDLER_SECRET = "handler-secret-a1b2c3d4"
SECRETS = (APP_SECRET, VERIFICATION_TOKEN, ENCRYPT_KEY, HANDLER_SECRET)


def bot_body(app_id: str = "cli_a1", **fields: Any) -> dict[str, Any]:
    """A create-bot body carrying every kind of secret."""
    return {
        "name": f"bot {app_id}",
        "appId": app_id,
        "appSecret": APP_SECRET,
        "verificationToken": VERIFICATION_TOKEN,
        "encryptKey": ENCRYPT_KEY,
        "handler": {"kind": "forward", "url": "http://127.0.0.1:9/hook", "secret": HANDLER_SECRET},
        **fields,
    }


class FakeFleet:
    """Records every call; answers as configured by the test."""

    def __init__(self) -> None:
        self.node_id = "test-node"
        self.is_ready = True
        self.calls: list[tuple[str, str]] = []
        self.send_uuids: list[str | None] = []
        self.webhook_gates: dict[str, threading.Event] = {}
        """A bot's deliveries wait until its event is set (a worker that is slow to answer)."""
        self.states: dict[str, ConnState] = {}
        self.send_result: SendResult | None = None
        self.retry_result: RetryResult | None = None
        self.webhook_answer = (200, b'{"challenge":"c"}', "application/json")
        self.webhook_bodies: list[bytes] = []
        self.fail_status = False
        self.changes = ChangeFeed()
        """Tests publish Change records here to drive what subscribers see."""
        self.store: Store | None = None

    def ready(self) -> bool:
        return self.is_ready

    async def holder_address(self, bot_id: str) -> str | None:
        return None  # one node: every bot is answered here

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        return self.changes.subscribe(maxsize)

    async def bot_added(self, bot_id: str) -> None:
        self.calls.append(("bot_added", bot_id))

    async def connect(self, bot_id: str) -> None:
        self.calls.append(("connect", bot_id))
        self.states[bot_id] = ConnState.CONNECTING

    async def disconnect(self, bot_id: str) -> None:
        self.calls.append(("disconnect", bot_id))
        self.states[bot_id] = ConnState.DISCONNECTED

    async def bot_changed(self, bot_id: str) -> None:
        self.calls.append(("bot_changed", bot_id))

    async def bot_removed(self, bot_id: str) -> None:
        """Like the supervisor, the fleet deletes the bot from the store once its worker is gone."""
        self.calls.append(("bot_removed", bot_id))
        if self.store is not None:
            self.store.delete_bot(bot_id)

    def status(self, bot_id: str) -> BotStatus:
        if self.fail_status:
            raise RuntimeError(f"status exploded with {APP_SECRET}")
        state = self.states.get(bot_id, ConnState.DISCONNECTED)
        return BotStatus(bot_id=bot_id, state=state, restarts=2, events_received=5)

    def metrics(self, bot_id: str) -> BotMetrics:
        """Fixed totals: 3 ACKs (two in the first bucket, one above every bound), 1 reply."""
        ack = Histogram(buckets=[2] + [0] * 9 + [1], sum=2.5, count=3)
        reply = Histogram(buckets=[0, 0, 0, 0, 1, 0, 0, 0, 0, 0], sum=0.75, count=1)
        counts = EventCounts(events_received=5, replies_sent=1, events_handled=4, events_failed=2)
        return BotMetrics(bot_id=bot_id, counts=counts, ack_latency=ack, reply_latency=reply)

    async def deliver_webhook(
        self, bot_id: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        self.calls.append(("deliver_webhook", bot_id))
        self.webhook_bodies.append(body)
        gate = self.webhook_gates.get(bot_id)
        if gate is not None:
            await asyncio.to_thread(gate.wait, 10)
        return self.webhook_answer

    async def send_message(
        self, bot_id: str, receive_id: str, receive_id_type: str, replies: Any,
        uuid: str | None,
    ) -> SendResult:
        self.calls.append(("send_message", bot_id))
        self.send_uuids.append(uuid)
        if self.send_result is not None:
            return self.send_result
        return SendResult(bot_id=bot_id, incarnation=7, request_id="r", ok=True, message_id="om_1")

    async def retry_dead_letter(self, bot_id: str, event_id: str) -> RetryResult:
        self.calls.append(("retry_dead_letter", bot_id))
        if self.retry_result is not None:
            return self.retry_result
        return RetryResult(bot_id=bot_id, incarnation=7, request_id="r", ok=True)


class Api:
    """The app served on 127.0.0.1 from a background event loop; requests from the test."""

    def __init__(self, data_dir: Path, **app_options: Any) -> None:
        self.paths = DataPaths(data_dir)
        self.paths.ensure()
        self.registry = open_store(self.paths)
        self.fleet = FakeFleet()
        self.fleet.store = self.registry
        self.security = SecurityPolicy(urls=UrlPolicy(allow=("127.0.0.1",)))
        """The operator allows the hooks on 127.0.0.1 the bodies here name."""
        self.app = create_app(self.fleet, self.registry, self.paths, self.security,
                              **app_options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(self.app, access_log=None)
        port = self._run(self._start())
        self.url = f"http://127.0.0.1:{port}"
        self.admin_token = self.paths.admin_token.read_text().strip()
        self.admin = self.session(self.admin_token)
        self.anonymous = requests.Session()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    def close(self) -> None:
        self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self.registry.close()

    def session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def call(
        self, session: requests.Session, method: str, path: str, **kw: Any
    ) -> requests.Response:
        return session.request(method, f"{self.url}{path}", timeout=10, **kw)

    def new_user(self, name: str = "alice") -> tuple[str, requests.Session]:
        response = self.call(self.admin, "POST", "/api/users", json={"name": name})
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], self.session(body["token"])

    def create_bot(self, session: requests.Session, app_id: str = "cli_a1", **fields: Any) -> str:
        response = self.call(session, "POST", "/api/feishu/bots", json=bot_body(app_id, **fields))
        assert response.status_code == 201, response.text
        return response.json()["id"]


@pytest.fixture(name="api")
def api_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.delenv("LARKFLEET_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("LARKFLEET_SECRET_KEY", raising=False)
    harness = Api(tmp_path / "data")
    yield harness
    harness.close()


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    """The one error shape: JSON {success: false, error: {code, message}}, the right status."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
