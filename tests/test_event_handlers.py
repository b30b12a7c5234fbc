"""Handlers against real local HTTP targets: forward, python, openai (with history)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from aiohttp import web

from shared.botconfig import ForwardHandler, OpenAIHandler, PythonHandler
from shared.results import reply_text
from tests.eventkit import bot_config, event, pipeline_for, running, sent_until, serve
from worker.content import Addressee, Message, parse_event
from worker.errors import EventError
from worker.handlers import HttpSession, build_handler
from worker.spool import Spool

SECRET = "forward-secret"


def shout(message: Message) -> str | None:
    """A sync python handler target."""
    return message.text.upper() if message.text else None


async def describe(message: Message) -> str:
    """An async python handler target."""
    await asyncio.sleep(0)
    return f"{message.message_type} in {message.chat_type} from {message.open_id}"


def returns_number(message: Message) -> int:
    return 42


async def _handle(spec, payload: bytes, tmp_path: Path) -> str | None:
    spool = Spool(tmp_path / "spool.db")
    http = HttpSession()
    handler = build_handler(spec, http, spool)
    try:
        answer = await handler.handle(parse_event(payload, Addressee("ou_b")))
        assert isinstance(answer, list), "a text stream where replies were expected"
        return reply_text(answer) or None
    finally:
        handler.close()
        await http.close()
        spool.close()


def test_echo_ignores_non_text(tmp_path: Path) -> None:
    from shared.botconfig import EchoHandler

    image = event(message_type="image", content='{"image_key":"k"}')
    assert asyncio.run(_handle(EchoHandler(), event("same"), tmp_path)) == "same"
    assert asyncio.run(_handle(EchoHandler(), image, tmp_path)) is None


def test_forward_posts_the_signed_raw_event(tmp_path: Path) -> None:
    received: list[bytes] = []
    event_ids: list[str | None] = []

    async def target(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Larkfleet-Signature") != expected:
            return web.Response(status=401)
        received.append(body)
        event_ids.append(request.headers.get("X-Larkfleet-Event-Id"))
        if request.path == "/silent":
            return web.Response(status=204)
        return web.json_response({"text": "forwarded: " + json.loads(body)["header"]["event_id"]})

    async def scenario() -> None:
        async with serve(target) as url:
            payload = event("hi", event_id="ev-fwd")
            spec = ForwardHandler(url=url + "/hook", secret=SECRET, timeout=5)
            assert await _handle(spec, payload, tmp_path) == "forwarded: ev-fwd"
            assert received == [payload], "the raw spooled bytes are forwarded unchanged"
            assert event_ids == ["ev-fwd"], "X-Larkfleet-Event-Id (docs/event-path.md)"
            silent = ForwardHandler(url=url + "/silent", secret=SECRET)
            assert await _handle(silent, payload, tmp_path) is None
            forged = ForwardHandler(url=url + "/hook", secret="wrong")
            with pytest.raises(EventError, match="401"):
                await _handle(forged, payload, tmp_path)

    asyncio.run(scenario())


def test_forward_timeout_is_a_retryable_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await release.wait()
            return web.json_response({"text": "late"})

        async with serve(slow) as url:
            spec = ForwardHandler(url=url, secret=SECRET, timeout=0.2)
            with pytest.raises(EventError, match="timed out") as caught:
                await _handle(spec, event(), tmp_path)
            assert not caught.value.permanent
            release.set()

    asyncio.run(scenario())


def test_python_handlers_sync_async_and_bad_targets(tmp_path: Path) -> None:
    mod = "tests.test_event_handlers"
    group = event("ignored", chat_type="group",
                  mentions=[{"key": "@_user_1", "name": "Bot", "id": {"open_id": "ou_b"}}])

    async def scenario() -> None:
        assert await _handle(PythonHandler(target=f"{mod}:shout"), event("hey"), tmp_path) == "HEY"
        assert await _handle(PythonHandler(target=f"{mod}:describe"), group, tmp_path) == (
            "text in group from ou_sender"
        )
        for target in (f"{mod}:missing", "no_such_module:f", "nocolon", f"{mod}:returns_number"):
            with pytest.raises(EventError) as caught:
                await _handle(PythonHandler(target=target), event(), tmp_path)
            assert caught.value.permanent, target

    asyncio.run(scenario())


def test_openai_handler_keeps_history_per_chat(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    requests_seen: list[dict] = []

    async def completions(request: web.Request) -> web.Response:
        assert request.path == "/v1/chat/completions"
        assert request.headers["Authorization"] == "Bearer sk-test"
        body = await request.json()
        requests_seen.append(body)
        answer = f"answer {len(requests_seen)} to {body['messages'][-1]['content']}"
        choice = {"message": {"role": "assistant", "content": answer}}
        return web.json_response({"choices": [choice]})

    async def scenario() -> None:
        async with serve(completions) as url:
            spec = OpenAIHandler(base_url=url + "/v1", model="m1", api_key="sk-test",
                                 system_prompt="be brief", history_turns=1, stream=False)
            async with running(pipeline_for(bot_config(app, handler=spec), tmp_path)) as pipeline:
                for i, text in enumerate(["one", "two", "three"]):
                    pipeline.accept(event(text, chat_id="oc_hist"))
                    await sent_until(app, i + 1)
                pipeline.accept(event("elsewhere", chat_id="oc_other"))
                sent = await sent_until(app, 4)
        assert [s["text"] for s in sent] == [
            "answer 1 to one", "answer 2 to two", "answer 3 to three", "answer 4 to elsewhere",
        ]
        assert requests_seen[2]["model"] == "m1"
        assert requests_seen[2]["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "answer 2 to two"},
            {"role": "user", "content": "three"},
        ]
        assert requests_seen[3]["messages"][1:] == [{"role": "user", "content": "elsewhere"}]

    asyncio.run(scenario())
