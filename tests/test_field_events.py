"""Field cases (shared field-cases.md rows 7, 9, 12, 19, 21) through the real service.

A tenant token revoked before its expiry, answers over the size limits, events
other than messages (v2 and v1) reaching forward and python handlers, and
topic-group threads (replies stay in the thread, openai history per thread).
"""

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from shared.idempotency import send_uuid
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp
from tests.test_event_e2e import ForwardTarget, bot_log, connected_bot, settled, wait_replies

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fleet(field_fleet: Service) -> Service:
    return field_fleet


def _python(target: str) -> dict[str, Any]:
    return {"kind": "python", "target": f"field_handlers:{target}"}


def test_row7_revoked_token_is_dropped_and_fetched_again(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    first = app.push("before", chat_id="oc_token")
    wait_replies(app, first["messageId"])
    before = app.info()["tokenRequests"]
    app.faults(invalidateToken=True)
    started = time.monotonic()
    second = app.push("after one", chat_id="oc_token")
    third = app.push("after two", chat_id="oc_token")
    assert wait_replies(app, second["messageId"])[0]["text"] == "after one"
    assert wait_replies(app, third["messageId"])[0]["text"] == "after two"
    assert time.monotonic() - started < 3, "retried at once with a fresh token, no backoff"
    status = settled(fleet, bot_id, time.time(), repliesSent=3)
    assert status["deadLetters"] == 0
    assert app.info()["tokenRequests"] == before + 1, "one fresh token, then cached again"
    assert "tenant token refused (code 99991663)" in bot_log(fleet, bot_id)


def test_row9_long_answer_is_split_in_order_under_the_limit(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(fleet, app, handler=_python("long_reply"))
    pushed = app.push("tell me everything")
    parts = wait_until(lambda: len(found := [s for s in app.sent()
                                             if s["replyTo"] == pushed["messageId"]]) >= 2
                       and found, 10, "the parts")
    expected = "\n".join(f"line {i:05d} " + "x" * 90 for i in range(2000))
    assert "\n".join(p["text"] for p in parts) == expected
    assert all(len(json.dumps({"content": p["content"]}, ensure_ascii=False).encode())
               < 150 * 1024 for p in parts)
    assert [p["uuid"] for p in parts] == [send_uuid(pushed["messageId"], 0, i)
                                          for i in range(len(parts))]


def test_row9_card_over_the_limit_falls_back_to_text_and_too_long_is_terminal(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(fleet, app, handler=_python("big_card"))
    pushed = app.push("show me a card")
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["msgType"] == "text" and reply["text"].startswith("row 0 yyy")
    assert reply["text"].count("\n") == 199

    echo = sim_app()
    echo_id, _ = connected_bot(fleet, echo)
    echo.faults(imErrors={"count": 20, "code": 230025, "status": 400,
                          "msg": "The message content is too long"})
    echo.push("short")
    status = fleet.wait_status(echo_id, lambda s: s["deadLetters"] == 1, 5, "a dead letter")
    [letter] = fleet.request("GET", f"/api/feishu/bots/{echo_id}/dead-letters").json()[
        "deadLetters"]
    assert letter["attempts"] == 1 and "230025" in letter["lastError"]
    assert status["pending"] == 0


def test_rows12_21_every_event_type_reaches_python_handlers(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(fleet, app, handler=_python("every_event"))
    chat = "oc_added_" + uuid.uuid4().hex[:6]
    app.push(event_type="im.chat.member.bot.added_v1", chat_id=chat)
    [greeting] = wait_until(lambda: [s for s in app.sent() if s["receiveId"] == chat], 10,
                            "the greeting")
    assert (greeting["kind"], greeting["receiveIdType"], greeting["text"]) == (
        "create", "chat_id", f"hello, group {chat}")
    v1_chat = "oc_v1_" + uuid.uuid4().hex[:6]
    app.push(body={"uuid": "v1-" + uuid.uuid4().hex, "token": "", "ts": "1700000000.5",
                   "type": "event_callback",
                   "event": {"type": "p2p_chat_create", "app_id": app.app_id,
                             "chat_id": v1_chat, "tenant_key": "t"}})
    [v1] = wait_until(lambda: [s for s in app.sent() if s["receiveId"] == v1_chat], 10,
                      "the v1 answer")
    assert v1["text"] == "1.0 p2p_chat_create"


def test_row12_forward_handlers_get_the_v2_envelope_echo_stays_silent(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    with Recorder("s", 0) as target:
        connected_bot(fleet, app, handler={"kind": "forward", "url": target.url, "secret": "s"})
        pushed = app.push(event_type="im.message.reaction.created_v1")
        [envelope] = wait_until(lambda: target.bodies, 10, "the forwarded reaction")
    assert envelope["schema"] == "2.0"
    assert envelope["header"]["event_id"] == pushed["eventId"]
    assert envelope["event"]["reaction_type"] == {"emoji_type": "SMILE"}

    echo = sim_app()
    echo_id, _ = connected_bot(fleet, echo)
    echo.push(event_type="im.chat.member.bot.added_v1")
    settled(fleet, echo_id, time.time(), eventsReceived=1, repliesSent=0)
    assert echo.sent() == []


class Recorder(ForwardTarget):
    """A local HTTP target that records each JSON body and answers 204."""

    bodies: list[dict[str, Any]]

    def __enter__(self) -> "Recorder":
        self.bodies = []
        super().__enter__()
        return self

    async def _answer(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=204)


class Completions(Recorder):
    """An OpenAI-compatible endpoint on 127.0.0.1: answers `answer N` to the Nth request."""

    async def _answer(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        text = f"answer {len(self.bodies)}"
        return web.json_response({"choices": [{"message": {"content": text}}]})


def test_row19_threads_keep_replies_and_history_apart(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    with Completions("s", 0) as target:
        handler = {"kind": "openai", "baseUrl": target.url.rsplit("/", 1)[0], "model": "m",
                   "stream": False}
        bot_id, _ = connected_bot(fleet, app, handler=handler)
        chat = "oc_topics_" + uuid.uuid4().hex[:6]
        a1 = app.push("first in A", chat_id=chat, thread_id="omt_a", root_id="om_root_a")
        wait_replies(app, a1["messageId"])
        b1 = app.push("first in B", chat_id=chat, thread_id="omt_b", root_id="om_root_b")
        wait_replies(app, b1["messageId"])
        a2 = app.push("second in A", chat_id=chat, thread_id="omt_a", root_id="om_root_a")
        [reply] = wait_replies(app, a2["messageId"])
        plain = app.push("no thread", chat_id=chat)
        [unthreaded] = wait_replies(app, plain["messageId"])
    assert reply["replyInThread"] is True and reply["threadId"] == "omt_a"
    assert unthreaded["replyInThread"] is False and unthreaded["threadId"] == ""
    requests = [body["messages"] for body in target.bodies]
    assert [m["content"] for m in requests[2]] == [
        "first in A", "answer 1", "second in A"], "thread A's history only"
    assert [m["content"] for m in requests[3]] == ["no thread"]
    settled(fleet, bot_id, time.time(), repliesSent=4)


def test_row17_wrong_domain_refusal_is_a_permanent_error_with_its_code(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    app.faults(endpointError={"code": 1000040351, "msg": "Incorrect domain name"})
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url)
    fleet.connect(bot_id)
    status = fleet.wait_state(bot_id, "error")
    assert status["errorCode"] == 1000040351
    assert "Incorrect domain name" in status["error"]
    assert app.info()["endpointCalls"] == 1, "no retries after a permanent refusal"


def test_row22_large_cjk_text_arrives_as_raw_utf8_and_is_echoed_whole(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    text = "中文消息" * 10_000  # 120,000 bytes of UTF-8; 240 KB if sent as \\u escapes
    pushed = app.push(text, fragments=2)
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == text
    assert fleet.status(bot_id)["deadLetters"] == 0


def test_rows13_21_webhook_pushes_of_app_messages_and_v1_events(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    token = "field-webhook-token"
    app = sim_app(verification_token=token)
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, useWebSocket=False,
                              verificationToken=token, handler=_python("every_event"))
    url = f"{fleet.url}/webhook/feishu/{bot_id}"
    from_app = app.client.webhook(app.app_id, url, text="echo me", senderType="app")
    assert from_app["status"] == 200, from_app
    chat = "oc_v1_hook_" + uuid.uuid4().hex[:6]
    v1 = app.client.webhook(app.app_id, url, body={
        "uuid": "v1-" + uuid.uuid4().hex, "token": token, "ts": "1700000000.5",
        "type": "event_callback",
        "event": {"type": "p2p_chat_create", "app_id": app.app_id, "chat_id": chat}})
    assert v1["status"] == 200, v1
    [answer] = wait_until(lambda: [s for s in app.sent() if s["receiveId"] == chat], 10,
                          "the v1 answer")
    assert answer["text"] == "1.0 p2p_chat_create"
    settled(fleet, bot_id, time.time(), eventsReceived=2, repliesSent=1)
    assert f"event {from_app['eventId']} ignored: message sent by an app" in bot_log(fleet,
                                                                                      bot_id)
