"""Rich replies, card actions, streamed cards and pacing through the real service (issue 14).

`larkfleet serve` with its workers against the simulator, which records
every message (with its msg_type), upload, card update, refusal and card
action answer; assertions are on what the platform saw.
"""

import asyncio
import contextlib
import itertools
import json
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.eventkit import serve
from tests.fixtures.events import EventFleet
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp
from worker.streaming import UPDATE_INTERVAL_S

pytestmark = pytest.mark.timeout(180)

TOKEN = "verification-token-cards"
KEY = "encrypt-key-cards"

HANDLERS = '''"""Python handlers for the card tests."""

import base64
import time

PNG = base64.b64encode(b"\\x89PNG\\r\\n\\x1a\\n not really an image").decode()
CARD = {"schema": "2.0", "body": {"elements": [
    {"tag": "markdown", "content": "pick one"},
    {"tag": "button", "text": {"tag": "plain_text", "content": "one"},
     "behaviors": [{"type": "callback", "value": {"n": 1}}]}]}}
POST = {"zh_cn": {"title": "Report", "content": [[{"tag": "text", "text": "all good"}]]}}


def rich(message):
    if getattr(message, "event_type", "") == "card.action.trigger":
        if message.value.get("slow"):
            time.sleep(4)
        n = message.value["n"]
        return {"toast": {"type": "success", "content": f"picked {n}"},
                "card": {"schema": "2.0", "body": {"elements": [
                    {"tag": "markdown", "content": f"you picked {n}"}]}}}
    text = message.text or ""
    if text == "all":
        return {"messages": [{"card": CARD}, {"image": {"base64": PNG}}, {"post": POST},
                             "done"]}
    return text


def words(message):
    for word in ("streamed ", "by ", "a ", "generator"):
        time.sleep(0.05)
        yield word
'''


@pytest.fixture(scope="module")
def cards_fleet(event_fleet: EventFleet) -> Service:
    """The session's event service (tests/fixtures/events.py), this module's python
    handlers written to its handler folder."""
    (event_fleet.handlers / "cards_handlers.py").write_text(HANDLERS)
    return event_fleet.service


class Server:
    """An aiohttp server answering every POST with `route`, on its own thread and loop."""

    def __init__(self, route: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.url = ""
        self._route = route
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()

    def __enter__(self) -> "Server":
        self._thread.start()
        self.url = self._run(self._stack.enter_async_context(serve(self._route)))
        return self

    def __exit__(self, *_: object) -> None:
        self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)


def fake_openai(words: list[str], delay: float,
                calls: list[dict[str, Any]]) -> Callable[[web.Request], Awaitable[Any]]:
    """An OpenAI-compatible /chat/completions streaming `words` as SSE chunks."""

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        calls.append(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in words:
            await asyncio.sleep(delay)
            chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    return completions


def connected_bot(fleet: Service, app: SimApp, **fields: Any) -> str:
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, **fields)
    fleet.connect(bot_id)
    fleet.wait_state(bot_id, "connected")
    return bot_id


def replies_to(app: SimApp, message_id: str) -> list[dict[str, Any]]:
    return [s for s in app.sent() if s.get("replyTo") == message_id and not s.get("duplicate")]


def cards(app: SimApp) -> list[dict[str, Any]]:
    return [s for s in app.sent() if s["msgType"] == "interactive" and not s.get("duplicate")]


def card_text(record: dict[str, Any]) -> str:
    elements = json.loads(record["content"])["body"]["elements"]
    return "\n".join(e.get("content", "") for e in elements)


def test_python_result_shapes_are_sent_in_order_with_their_msg_types(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(cards_fleet, app, handler={"kind": "python", "target": "cards_handlers:rich"})
    pushed = app.push("all")
    sent = wait_until(lambda: len(replies_to(app, pushed["messageId"])) == 4 and
                      replies_to(app, pushed["messageId"]), 15, "four replies")
    assert [s["msgType"] for s in sent] == ["interactive", "image", "post", "text"]
    assert json.loads(sent[0]["content"])["schema"] == "2.0"
    [upload] = app.info()["uploads"]
    assert json.loads(sent[1]["content"]) == {"image_key": upload["key"]}
    assert upload["kind"] == "image" and upload["head"].startswith("89504e47")
    assert json.loads(sent[2]["content"])["zh_cn"]["title"] == "Report"
    assert sent[3]["text"] == "done"
    uuids = [s["uuid"] for s in sent]
    assert len(set(uuids)) == 4 and all(uuids), "one stable uuid per position"


def test_card_click_over_the_long_connection_is_answered_in_the_ack(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id = connected_bot(cards_fleet, app,
                           handler={"kind": "python", "target": "cards_handlers:rich"})
    answer = app.card_action(value={"n": 7}, event_id="ev-click-1")
    assert answer["acked"] and answer["code"] == 200
    assert answer["seconds"] < 3.0
    assert answer["response"]["toast"] == {"type": "success", "content": "picked 7"}
    card = answer["response"]["card"]
    assert card["type"] == "raw" and "you picked 7" in json.dumps(card["data"])

    again = app.card_action(value={"n": 7}, event_id="ev-click-1")
    assert again["response"] == answer["response"], "a redelivery gets the first answer"

    late = app.card_action(value={"n": 2, "slow": True}, timeout=6)
    assert late["acked"] and late["code"] == 200 and late["response"] is None
    assert late["seconds"] < 3.0, "past the deadline the ACK is empty, and still in time"
    log = cards_fleet.request("GET", f"/api/feishu/bots/{bot_id}/logs?tail=100").text
    assert "no answer within 2.5 s" in log

    legacy = app.card_action(value={"n": 3}, legacy_frame=True, timeout=1.5)
    assert legacy["acked"] is False, "old type=card frames are dropped by the SDK, unACKed"


def test_card_click_over_webhook_is_answered_in_the_http_response(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(verification_token=TOKEN, encrypt_key=KEY)
    bot_id = cards_fleet.create_bot(
        app.app_id, app.app_secret, app.url, useWebSocket=False, verificationToken=TOKEN,
        encryptKey=KEY, handler={"kind": "python", "target": "cards_handlers:rich"})
    cards_fleet.wait_state(bot_id, "webhook")
    url = f"{cards_fleet.url}/webhook/feishu/{bot_id}"
    answer = app.card_action(url=url, value={"n": 4})
    assert answer["status"] == 200 and answer["seconds"] < 3.0
    assert answer["response"]["toast"]["content"] == "picked 4"
    assert "you picked 4" in json.dumps(answer["response"]["card"]["data"])


def test_openai_stream_is_one_card_updated_at_a_bounded_rate_then_final(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    words = [f"w{i} " for i in range(40)]
    calls: list[dict[str, Any]] = []
    with Server(fake_openai(words, 0.05, calls)) as server:
        connected_bot(cards_fleet, app, handler={
            "kind": "openai", "baseUrl": server.url + "/v1", "model": "m"})
        pushed = app.push("tell me")
        wait_until(lambda: [c for c in cards(app) if c.get("updatedAt") and
                            card_text(c) == "".join(words)], 20, "the final card")
    [card] = cards(app)
    assert card["replyTo"] == pushed["messageId"]
    assert calls[0]["stream"] is True
    updates = [u["at"] for u in app.info()["updates"] if u["messageId"] == card["messageId"]]
    assert len(updates) >= 3, "updated while written, not only at the end"
    gaps = [b - a for a, b in itertools.pairwise(updates)]
    assert min(gaps) >= UPDATE_INTERVAL_S * 0.9, f"at most {1 / UPDATE_INTERVAL_S:g}/s: {gaps}"
    assert not app.info()["refusals"]


def test_python_generator_streams_into_one_card(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(cards_fleet, app, handler={"kind": "python", "target": "cards_handlers:words"})
    app.push("go")
    wait_until(lambda: [c for c in cards(app) if card_text(c) == "streamed by a generator"],
               15, "the final card")
    assert len(cards(app)) == 1 and len(app.sent()) == 1


def test_kill_9_mid_stream_ends_with_exactly_one_card(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    words = [f"slow{i} " for i in range(40)]
    calls: list[dict[str, Any]] = []
    with Server(fake_openai(words, 0.1, calls)) as server:
        bot_id = connected_bot(cards_fleet, app, handler={
            "kind": "openai", "baseUrl": server.url + "/v1", "model": "m"})
        pid = cards_fleet.status(bot_id)["pid"]
        app.push("long answer please")
        wait_until(lambda: [c for c in cards(app) if c.get("updates", 0) >= 2], 15,
                   "a card being written")
        os.kill(pid, signal.SIGKILL)
        cards_fleet.wait_status(bot_id, lambda s: s["state"] == "connected" and
                                s["pid"] not in (None, pid), 20, "a new connected worker")
        wait_until(lambda: [c for c in cards(app) if card_text(c) == "".join(words)], 30,
                   "the same card finalised")
    assert len(app.sent()) == 1, "the retry wrote into the card it found in the spool, " \
        "without even a second (uuid-deduplicated) send"
    assert len(calls) == 2, "the stream was run again after the crash"


def test_a_burst_of_30_replies_to_one_chat_is_paced_in_order(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(cards_fleet, app)
    pushed = [app.push(f"m{i}", chat_id="oc_burst")["messageId"] for i in range(30)]
    sent = wait_until(lambda: len(app.sent()) >= 30 and app.sent(), 20, "30 replies")
    assert [s["replyTo"] for s in sent] == pushed, "in the order of the messages"
    assert [s["text"] for s in sent] == [f"m{i}" for i in range(30)]
    assert not app.info()["refusals"], "paced before the platform refused"
    times = [s["at"] for s in sent]
    assert all(b - a >= 1.0 for a, b in zip(times, times[5:], strict=False)), \
        "at most 5 within any second"


def test_api_sends_every_shape_and_answers_the_message_ids(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id = connected_bot(cards_fleet, app)
    path = f"/api/feishu/bots/{bot_id}/messages"
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "hi"}]}}
    body = {"receiveId": "oc_api", "receiveIdType": "chat_id", "uuid": "api-1",
            "messages": [{"card": card}, {"image": {"base64": "iVBORw0KGgo="}},
                         {"cardTemplate": {"id": "AAqk1", "variables": {"x": 1}}}, "bye"]}
    response = cards_fleet.request("POST", path, json=body)
    assert response.status_code == 200, response.text
    ids = response.json()["messageIds"]
    assert len(ids) == 4 and response.json()["messageId"] == ids[0]
    sent = app.sent()
    assert [s["messageId"] for s in sent] == ids
    assert [s["msgType"] for s in sent] == ["interactive", "image", "interactive", "text"]
    assert sent[0]["uuid"] == "api-1"
    again = cards_fleet.request("POST", path, json=body)
    assert again.json()["messageIds"] == ids, "the same request sends nothing twice"

    old = cards_fleet.request("POST", path, json={"receiveId": "ou_1", "receiveIdType": "open_id",
                                                  "text": "plain"})
    assert old.status_code == 200 and old.json()["messageId"]
    bad = cards_fleet.request("POST", path, json={"receiveId": "ou_1", "receiveIdType": "open_id",
                                                  "messages": ["a", {"card": "x"}]})
    assert bad.status_code == 400 and "$.messages[1].card" in bad.text
    none = cards_fleet.request("POST", path, json={"receiveId": "ou_1", "receiveIdType": "open_id"})
    assert none.status_code == 400


def test_stream_failure_midway_shows_what_was_written_and_an_error(
    cards_fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": "half an answer"}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: {not json\n\n")
        return response

    with Server(broken) as server:
        connected_bot(cards_fleet, app, handler={
            "kind": "openai", "baseUrl": server.url + "/v1", "model": "m"})
        app.push("x")
        [card] = wait_until(lambda: [c for c in cards(app) if "⚠️" in card_text(c)], 15,
                            "the error card")
    text = card_text(card)
    assert text.startswith("half an answer") and "delta" in text
    assert len(cards(app)) == 1
