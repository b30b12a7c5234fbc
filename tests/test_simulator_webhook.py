"""Webhook pushes from the simulator, verified by the SDK's own EventDispatcherHandler."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import lark_oapi as lark
import pytest
from aiohttp import web
from lark_oapi.core.model import RawRequest

CANONICAL = ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")


class Target:
    """A tiny bot endpoint that hands every request to the SDK's webhook dispatcher."""

    def __init__(self, encrypt_key: str, verification_token: str) -> None:
        self.received: list[Any] = []
        self.handler = (
            lark.EventDispatcherHandler.builder(encrypt_key, verification_token)
            .register_p2_im_message_receive_v1(self.received.append)
            .build()
        )
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = RawRequest()
        raw.uri = request.path
        raw.body = await request.read()
        raw.headers = {name: request.headers[name] for name in CANONICAL if name in request.headers}
        resp = self.handler.do(raw)
        return web.Response(status=resp.status_code, body=resp.content)

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/hook"
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target("enc-key-1", "vt-1")
    t.start()
    yield t
    t.stop()


def test_encrypted_signed_push_is_accepted(sim_app, sim_client, target) -> None:
    app = sim_app(encryptKey="enc-key-1", verificationToken="vt-1")
    result = sim_client.webhook(app.app_id, target.url, text="hook hello", chatType="group")
    assert result["status"] == 200, result
    assert len(target.received) == 1
    event = target.received[0]
    assert event.header.event_id == result["eventId"]
    assert json.loads(event.event.message.content) == {"text": "hook hello"}


def test_challenge_is_answered(sim_app, sim_client, target) -> None:
    app = sim_app(encryptKey="enc-key-1", verificationToken="vt-1")
    result = sim_client.webhook(app.app_id, target.url, challenge=True)
    assert result["status"] == 200
    assert json.loads(result["body"]) == {"challenge": result["challenge"]}


def test_challenge_arrives_unsigned_as_the_platform_sends_it(sim_app, sim_client) -> None:
    seen: list[dict[str, str]] = []
    app = sim_app(encryptKey="enc-key-1", verificationToken="vt-1")

    class Recorder(Target):
        async def _handle(self, request):  # type: ignore[no-untyped-def]
            seen.append(dict(request.headers))
            return await super()._handle(request)

    recorder = Recorder("enc-key-1", "vt-1")
    recorder.start()
    try:
        challenge = sim_client.webhook(app.app_id, recorder.url, challenge=True)
        event = sim_client.webhook(app.app_id, recorder.url, text="signed")
    finally:
        recorder.stop()
    assert challenge["status"] == 200 and event["status"] == 200
    assert "X-Lark-Signature" not in seen[0] and "X-Lark-Signature" in seen[1]


def test_tampered_signature_is_refused(sim_app, sim_client, target) -> None:
    app = sim_app(encryptKey="enc-key-1", verificationToken="vt-1")
    result = sim_client.webhook(app.app_id, target.url, text="x", tamper=True)
    assert result["status"] == 500
    assert target.received == []


def test_plain_push_without_encrypt_key(sim_app, sim_client) -> None:
    plain = Target("", "vt-2")
    plain.start()
    try:
        app = sim_app(verificationToken="vt-2")
        result = sim_client.webhook(app.app_id, plain.url, text="plain")
        assert result["status"] == 200, result
        assert [e.header.event_id for e in plain.received] == [result["eventId"]]
    finally:
        plain.stop()
