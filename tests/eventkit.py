"""Helpers for the event path tests: event payloads, a running pipeline, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from shared.botconfig import BotConfig, EchoHandler, HandlerSpec
from shared.paths import DataPaths
from worker.pipeline import ConsumerSettings, EventPipeline

FAST = ConsumerSettings(
    max_attempts=3, backoff_base_s=0.05, backoff_cap_s=0.2, rate_limit_delay_s=0.1
)


def event(
    text: str = "hi",
    *,
    event_id: str | None = None,
    chat_id: str = "oc_chat",
    chat_type: str = "p2p",
    message_type: str = "text",
    content: str | None = None,
    mentions: list[dict[str, Any]] | None = None,
    message_id: str | None = None,
    event_type: str = "im.message.receive_v1",
    token: str = "",
) -> bytes:
    """A v2 `im.message.receive_v1` envelope as the platform sends it."""
    body = {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "event_type": event_type,
            "create_time": str(int(time.time() * 1000)),
            "token": token,
            "app_id": "cli_test",
            "tenant_key": "tenant",
        },
        "event": {
            "sender": {"sender_id": {"open_id": "ou_sender"}, "sender_type": "user"},
            "message": {
                "message_id": message_id or "om_" + uuid.uuid4().hex,
                "chat_id": chat_id,
                "chat_type": chat_type,
                "message_type": message_type,
                "content": content if content is not None else json.dumps({"text": text}),
                "mentions": mentions or [],
            },
        },
    }
    return json.dumps(body).encode()


def bot_config(app: Any = None, handler: HandlerSpec | None = None, **fields: Any) -> BotConfig:
    """A bot bound to a simulator app (or to a placeholder app when none is given)."""
    return BotConfig(
        id=fields.pop("id", "bot-" + uuid.uuid4().hex[:8]),
        name=fields.pop("name", "Bot"),
        app_id=app.app_id if app else "cli_unused",
        app_secret=app.app_secret if app else "unused-secret",
        domain=app.url if app else "http://127.0.0.1:9",
        handler=handler or EchoHandler(),
        **fields,
    )


def pipeline_for(bot: BotConfig, data: Path, settings: ConsumerSettings = FAST) -> EventPipeline:
    return EventPipeline(bot, DataPaths(data), settings)


@contextlib.asynccontextmanager
async def running(pipeline: EventPipeline) -> AsyncIterator[EventPipeline]:
    """Run the consumer for the block; cancel it and close the pipeline after."""
    task = asyncio.create_task(pipeline.run())
    try:
        yield pipeline
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pipeline.close()


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll `predicate` (sync) until truthy or the monotonic deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


async def sent_until(app: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The simulator's sent list once it holds at least `count` messages."""
    deadline = time.monotonic() + timeout
    while True:
        sent = await asyncio.to_thread(app.sent)
        if len(sent) >= count:
            return sent
        if time.monotonic() >= deadline:
            raise AssertionError(f"expected {count} sent messages, got {sent}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve(
    route: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A real aiohttp server on 127.0.0.1 answering every POST with `route`."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
