"""Webhook mode: the simulator pushes (encrypted, signed) to a local target that calls
`EventPipeline.handle_webhook`, as the API will."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.eventkit import bot_config, pipeline_for, running, sent_until, serve
from worker.pipeline import EventPipeline

TOKEN = "verification-token-1"
KEY = "encrypt-key-1"


@contextlib.asynccontextmanager
async def webhook_target(pipeline: EventPipeline) -> AsyncIterator[str]:
    """A real HTTP endpoint that hands the raw request to the pipeline."""

    async def receive(request: web.Request) -> web.Response:
        status, body, content_type = await pipeline.handle_webhook(
            dict(request.headers), await request.read()
        )
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    async with serve(receive) as url:
        yield f"{url}/webhook"


async def push(app, url: str, **fields) -> dict:
    return await asyncio.to_thread(app.client.webhook, app.app_id, url, **fields)


def test_challenge_encrypted_event_and_forged_signature(sim_app, tmp_path: Path) -> None:
    app = sim_app(verification_token=TOKEN, encrypt_key=KEY)
    bot = bot_config(app, verification_token=TOKEN, encrypt_key=KEY, use_websocket=False)

    async def scenario() -> None:
        async with running(pipeline_for(bot, tmp_path)) as pipeline, \
                webhook_target(pipeline) as url:
            started = time.monotonic()
            challenge = await push(app, url, challenge=True)
            assert time.monotonic() - started < 1.0
            assert challenge["status"] == 200
            assert json.loads(challenge["body"]) == {"challenge": challenge["challenge"]}

            pushed = await push(app, url, text="secret hello")
            assert pushed["status"] == 200, pushed
            assert pipeline.counters.counts.events_received == 1, "spooled before the 200"
            [reply] = await sent_until(app, 1)
            assert (reply["replyTo"], reply["text"]) == (pushed["messageId"], "secret hello")

            again = await push(app, url, text="secret hello", event_id=pushed["eventId"])
            assert again["status"] == 200 and pipeline.counters.duplicates == 1

            forged = await push(app, url, text="forged", tamper=True)
            assert forged["status"] == 401
            assert json.loads(forged["body"])["error"]["code"] == "invalid_signature"

            other = await push(app, url, text="x", event_type="im.chat.updated_v1")
            assert other["status"] == 200 and pipeline.counters.counts.events_received == 2, (
                "every verified event type is spooled for the handlers")

    asyncio.run(scenario())


GARBAGE = [
    (b"garbage", 400, "bad_body", "body is not JSON"),
    (b"[1]", 400, "bad_body", "body is not a JSON object"),
    (b'{"encrypt": "bm90IGFlcw=="}', 401, "no_encrypt_key",
     "encrypted push but no encrypt key configured"),
    (b'{"schema": 5}', 400, "bad_event", "event could not be parsed"),
]
"""Bodies that are not a usable push, with the status and code each must get (docs/event-path.md:
400 for a garbage body, 401 for a missing key, a wrong token or signature)."""


def test_wrong_token_and_garbage_bodies_are_refused(sim_app, tmp_path: Path) -> None:
    app = sim_app(verification_token="someone-else")
    bot = bot_config(app, verification_token=TOKEN, use_websocket=False)

    async def scenario() -> None:
        pipeline = pipeline_for(bot, tmp_path)
        async with webhook_target(pipeline) as url:
            wrong = await push(app, url, text="hi")
            assert wrong["status"] == 401
            assert json.loads(wrong["body"])["error"]["code"] == "invalid_token"
            async with aiohttp.ClientSession() as http:
                for body, status, code, message in GARBAGE:
                    async with http.post(url, data=body) as resp:
                        answer = await resp.json()
                        assert (resp.status, answer) == (status, {
                            "success": False, "error": {"code": code, "message": message}}), body
        assert pipeline.counters.counts.events_received == 0
        await pipeline.close()

    asyncio.run(scenario())


def test_plain_webhook_with_token_only(sim_app, tmp_path: Path) -> None:
    app = sim_app(verification_token=TOKEN)
    bot = bot_config(app, verification_token=TOKEN, use_websocket=False)

    async def scenario() -> None:
        async with running(pipeline_for(bot, tmp_path)) as pipeline, \
                webhook_target(pipeline) as url:
            pushed = await push(app, url, text="plain")
            assert pushed["status"] == 200, pushed
            [reply] = await sent_until(app, 1)
            assert reply["text"] == "plain"

    asyncio.run(scenario())


def test_a_push_the_spool_cannot_store_answers_500_and_the_retry_is_served(
    sim_app, tmp_path: Path
) -> None:
    """A full disk (SQLite's max_page_count reached: SQLITE_FULL) means the event is not
    stored: the platform gets 500 so it pushes again, never a 200 for a lost event."""
    app = sim_app(verification_token=TOKEN)
    bot = bot_config(app, verification_token=TOKEN, use_websocket=False)

    async def scenario() -> None:
        async with running(pipeline_for(bot, tmp_path)) as pipeline, \
                webhook_target(pipeline) as url:
            spool = pipeline._spool._conn
            pages = spool.execute("pragma page_count").fetchone()[0]
            spool.execute(f"pragma max_page_count = {pages}")
            text = "too big for a full disk " + "x" * 20_000
            refused = await push(app, url, text=text)
            assert refused["status"] == 500, refused
            assert json.loads(refused["body"]) == {"success": False, "error": {
                "code": "spool_failed", "message": "event could not be stored, retry later"}}
            assert pipeline.counters.counts.events_received == 0
            assert app.sent() == []

            spool.execute("pragma max_page_count = 1073741823")
            stored = await push(app, url, text=text, event_type="im.chat.updated_v1")
            assert (stored["status"], json.loads(stored["body"])) == (200, {"msg": "success"})
            again = await push(app, url, text=text, event_id=refused["eventId"])
            assert (again["status"], json.loads(again["body"])) == (200, {"msg": "success"})
            [reply] = await sent_until(app, 1)
            assert reply["replyTo"] == again["messageId"]

    asyncio.run(scenario())


def signed(body: bytes, key: str, timestamp: str, nonce: str = "n0nce") -> dict[str, str]:
    from simulator.crypto import sign

    return {"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": sign(timestamp, nonce, key, body)}


def test_receiver_refuses_stale_unauthenticated_and_undecryptable_pushes(
    tmp_path: Path
) -> None:
    """WebhookReceiver on its own (no network): each refusal's status, code and message."""
    from simulator.crypto import encrypt
    from tests.eventkit import event
    from worker.webhook import WebhookReceiver

    def error(status: int, code: str, message: str) -> tuple[int, dict]:
        return status, {"success": False, "error": {"code": code, "message": message}}

    def answer(result) -> tuple[int, dict]:
        status, body, _ = result
        return status, json.loads(body)

    accepted: list[bytes] = []
    bot = bot_config(None, encrypt_key=KEY, use_websocket=False)
    receiver = WebhookReceiver(bot, accepted.append, max_age=300)
    body = json.dumps({"encrypt": encrypt(event("hello", event_id="ev_signed"), KEY)}).encode()
    now = time.time()

    stale = receiver.handle(signed(body, KEY, str(int(now - 400))), body)
    assert answer(stale)[0] == 401 and answer(stale)[1]["error"]["code"] == "stale_timestamp"
    assert "older than 300 s are refused as replays" in answer(stale)[1]["error"]["message"]
    future = receiver.handle(signed(body, KEY, str(int(now + 400))), body)
    assert answer(future)[1]["error"]["code"] == "stale_timestamp", "either way"
    garbled = receiver.handle(signed(body, KEY, "yesterday"), body)
    assert answer(garbled) == error(401, "stale_timestamp",
                                    "X-Lark-Request-Timestamp is not a number of seconds")
    assert accepted == []

    fresh = receiver.handle({k.lower(): v for k, v in signed(body, KEY, str(int(now))).items()},
                            body)
    assert answer(fresh) == (200, {"msg": "success"})
    assert [json.loads(a)["header"]["event_id"] for a in accepted] == ["ev_signed"]

    wrong = json.dumps({"encrypt": encrypt(event("x"), "another-key")}).encode()
    assert answer(receiver.handle(signed(wrong, KEY, str(int(now))), wrong)) == error(
        400, "bad_body", "encrypted body cannot be decrypted")

    bare = WebhookReceiver(bot_config(None, use_websocket=False), accepted.append)
    from shared.security import WEBHOOK_AUTH_REQUIRED

    assert answer(bare.handle({}, event("no credentials"))) == error(
        401, "webhook_unauthenticated", WEBHOOK_AUTH_REQUIRED)
    assert len(accepted) == 1


def test_receiver_answers_wrong_credentials_spool_failures_and_card_actions(
    tmp_path: Path
) -> None:
    from simulator.crypto import encrypt
    from tests.eventkit import event
    from worker.webhook import CallbackRequest, WebhookReceiver

    def error(status: int, code: str, message: str) -> tuple[int, dict]:
        return status, {"success": False, "error": {"code": code, "message": message}}

    def answer(result) -> tuple[int, dict]:
        status, body, _ = result
        return status, json.loads(body)

    def full_disk(payload: bytes) -> None:
        raise OSError("database or disk is full")

    now = str(int(time.time()))
    token_bot = bot_config(None, verification_token=TOKEN, use_websocket=False)
    receiver = WebhookReceiver(token_bot, full_disk)
    wrong = event("x", token="not-the-token")
    assert answer(receiver.handle({}, wrong)) == error(401, "invalid_token",
                                                       "verification token does not match")
    message = event("x", token=TOKEN)
    stored = error(500, "spool_failed", "event could not be stored, retry later")
    assert answer(receiver.handle({}, message)) == stored
    other = event("x", token=TOKEN, event_type="im.chat.updated_v1")
    assert answer(receiver.handle({}, other)) == stored, "any event type"

    key_bot = bot_config(None, encrypt_key=KEY, use_websocket=False)
    keyed = WebhookReceiver(key_bot, full_disk)
    body = json.dumps({"encrypt": encrypt(event("x"), KEY)}).encode()
    forged = signed(body, KEY, now)
    forged["X-Lark-Signature"] = "0" * 64
    assert answer(keyed.handle(forged, body)) == error(401, "invalid_signature",
                                                       "signature does not match")
    listed = json.dumps({"encrypt": encrypt(b"[1, 2]", KEY)}).encode()
    assert answer(keyed.handle(signed(listed, KEY, now), listed)) == error(
        400, "bad_body", "event is not a JSON object")

    action = event("x", event_type="card.action.trigger")
    card = json.dumps({"encrypt": encrypt(action, KEY)}).encode()
    callback = keyed.handle(signed(card, KEY, now), card)
    assert isinstance(callback, CallbackRequest)
    assert json.loads(callback.payload)["header"]["event_type"] == "card.action.trigger"
    after = keyed.handle(signed(listed, KEY, now), listed)
    assert not isinstance(after, CallbackRequest), "a callback is not remembered"
