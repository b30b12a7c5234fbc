"""The event path end to end through the real service (issue 5's tests).

`larkfleet serve` with its zygote, workers, ZeroMQ and spools, driven through
the HTTP API against the simulator; assertions are on what the platform saw
(ACKs, sent messages, uuids), the status API, the bot's log and /metrics.
Retries are made fast through the environment (LARKFLEET_EVENT_*), not mocks.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.eventkit import serve
from tests.fixtures.events import EventFleet
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(180)

FORWARD_SECRET = "forward-secret-e2e-5f4e3d"
TOKEN = "verification-token-e2e"
KEY = "encrypt-key-e2e"
SLOW = 5.0
"""Seconds the slow forward target takes: longer than the platform's 3 s ACK limit."""

FLAKY_HANDLER = '''"""A python handler for the e2e tests: raises until its flag file exists."""

from pathlib import Path

FLAG = Path(__file__).with_name("flaky.ok")


def answer(message):
    if not FLAG.exists():
        raise RuntimeError("flaky handler: flag not set yet")
    return f"recovered: {message.text}"
'''


CRASHING_HANDLER = '''"""A python handler for the e2e tests: "poison" ends the worker at once."""

import os


def answer(message):
    if message.text == "poison":
        os._exit(1)
    return f"fine: {message.text}"
'''


SDK_READING_HANDLER = '''"""An e2e python handler: reads an SDK API the zygote did not preload."""


def answer(message):
    from lark_oapi.api.docs.v1 import GetContentRequest

    return GetContentRequest.__name__ + ": " + message.text
'''

LATE_SDK_WARNING = "which the zygote did not preload"
"""What a worker's log says when its handler loads SDK packages the zygote did not
(worker/main.py `_late_sdk_load`)."""


@pytest.fixture(scope="module")
def handlers_dir(event_fleet: EventFleet) -> Path:
    """The folder on the service's PYTHONPATH, holding this module's python handlers."""
    (event_fleet.handlers / "e2e_flaky.py").write_text(FLAKY_HANDLER)
    (event_fleet.handlers / "e2e_crashing.py").write_text(CRASHING_HANDLER)
    (event_fleet.handlers / "e2e_sdk_reader.py").write_text(SDK_READING_HANDLER)
    return event_fleet.handlers


@pytest.fixture(scope="module")
def fleet(event_fleet: EventFleet, handlers_dir: Path) -> Service:
    """The session's event service (tests/fixtures/events.py: three attempts 0.1 s apart,
    restarts from 0.2 s, a 2 s endpoint timeout); after the session no log holds a
    secret of this module's."""
    event_fleet.secrets.extend([FORWARD_SECRET, TOKEN, KEY])
    return event_fleet.service


class ForwardTarget:
    """A slow forward target on 127.0.0.1, served from its own thread and loop.

    Checks the X-Larkfleet-Signature HMAC of every request, records it, then
    answers `{"text": "forwarded: <text>"}` after `delay` (released early on exit).
    """

    def __init__(self, secret: str, delay: float) -> None:
        self.secret = secret
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self._release = asyncio.Event()

    def __enter__(self) -> "ForwardTarget":
        self._thread.start()
        self.url = self._run(self._stack.enter_async_context(serve(self._answer))) + "/hook"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        event = json.loads(body)
        self.requests.append({
            "eventId": event["header"]["event_id"],
            "signed": hmac.compare_digest(request.headers.get("X-Larkfleet-Signature", ""),
                                          expected),
        })
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.delay)
        text = json.loads(event["event"]["message"]["content"])["text"]
        return web.json_response({"text": f"forwarded: {text}"})


def connected_bot(fleet: Service, app: SimApp, **fields: Any) -> tuple[str, dict[str, Any]]:
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, **fields)
    fleet.connect(bot_id)
    return bot_id, fleet.wait_state(bot_id, "connected")


def replies_to(app: SimApp, message_id: str) -> list[dict[str, Any]]:
    return [s for s in app.sent() if s.get("replyTo") == message_id]


def wait_replies(app: SimApp, message_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    return wait_until(lambda: replies_to(app, message_id), timeout, f"a reply to {message_id}")


def acks(app: SimApp, event_id: str) -> list[dict[str, Any]]:
    return [a for a in app.info()["acked"] if a["eventId"] == event_id and a["code"] == 200]


def settled(fleet: Service, bot_id: str, since: float, **expected: int) -> dict[str, Any]:
    """The first status from a heartbeat sent after `since` (epoch s) with nothing pending.

    Half a second of margin: a heartbeat built before `since` has long arrived.
    """

    def fresh(status: dict[str, Any]) -> bool:
        heard = status["lastHeartbeat"]
        return (heard is not None and datetime.fromisoformat(heard).timestamp() > since + 0.5
                and status["pending"] == 0
                and all(status[k] == v for k, v in expected.items()))

    return fleet.wait_status(bot_id, fresh, 10, f"a settled heartbeat with {expected}")


def bot_log(fleet: Service, bot_id: str) -> str:
    response = fleet.request("GET", f"/api/feishu/bots/{bot_id}/logs?tail=200")
    assert response.status_code == 200, response.text
    return response.text


def metric_samples(fleet: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = fleet.request("GET", "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_echo_replies_once_with_uuid_counts_logs_and_metrics(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    pushed = app.push("hello e2e")
    [reply] = wait_replies(app, pushed["messageId"])
    assert (reply["kind"], reply["text"]) == ("reply", "hello e2e")
    assert reply["uuid"]
    settled(fleet, bot_id, time.time(), eventsReceived=1, repliesSent=1)
    assert len(app.sent()) == 1

    event_id = pushed["eventId"]
    log = wait_until(lambda: (text := bot_log(fleet, bot_id)) and
                     f"event {event_id} received" in text and text, 5, "the event in the log")
    [line] = [line for line in log.splitlines() if f"event {event_id} received" in line]
    assert f"replied as {reply['messageId']}" in line, "one line per event, reply included"
    assert app.app_secret not in log
    assert LATE_SDK_WARNING not in log, "larkfleet's own SDK imports are all preloaded"

    label = (("bot_id", bot_id),)

    def histograms_moved() -> dict | None:
        samples = metric_samples(fleet)
        done = samples.get(("larkfleet_bot_reply_latency_seconds_count", label)) == 1
        return samples if done else None

    samples = wait_until(histograms_moved, 5, "the reply latency in /metrics")
    assert samples[("larkfleet_bot_ack_latency_seconds_count", label)] == 1
    assert samples[("larkfleet_bot_ack_latency_seconds_bucket", (*label, ("le", "+Inf")))] == 1
    assert 0 < samples[("larkfleet_bot_ack_latency_seconds_sum", label)] < 1
    assert samples[("larkfleet_bot_events_received_total", label)] == 1
    assert samples[("larkfleet_bot_events_handled_total", label)] == 1
    assert samples[("larkfleet_bot_events_failed_total", label)] == 0


def test_same_event_three_times_gives_one_reply(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    event_id = f"ev-dup-{uuid.uuid4().hex}"
    pushed = app.push("only once", event_id=event_id)
    app.redeliver(event_id)
    app.redeliver(event_id)
    three = wait_until(lambda: len(found := acks(app, event_id)) == 3 and found, 5, "three ACKs")
    wait_replies(app, pushed["messageId"])
    settled(fleet, bot_id, max(a["at"] for a in three), eventsReceived=1, repliesSent=1)
    assert len(app.sent()) == 1


def test_fragmented_event_is_answered(fleet: Service, sim_app: Callable[..., SimApp]) -> None:
    app = sim_app()
    connected_bot(fleet, app)
    text = "fragmented " + "x" * 600
    pushed = app.push(text, fragments=3)
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == text


def test_slow_forward_target_acks_at_once_and_replies_later(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    with ForwardTarget(FORWARD_SECRET, SLOW) as target:
        handler = {"kind": "forward", "url": target.url, "secret": FORWARD_SECRET}
        bot_id, _ = connected_bot(fleet, app, handler=handler)
        pushed = app.push("take your time")
        [ack] = wait_until(lambda: acks(app, pushed["eventId"]), 3, "the ACK")
        # Within the platform's 3 s, while the handler still runs; how far under 3 s
        # (p99 push-to-ACK) is measured by `make bench` on a quiet machine.
        assert ack["at"] - ack["sentAt"] < 3.0
        assert replies_to(app, pushed["messageId"]) == []
        [reply] = wait_replies(app, pushed["messageId"], SLOW + 5)
    assert reply["text"] == "forwarded: take your time"
    assert reply["at"] - ack["at"] > SLOW - 1
    assert target.requests == [{"eventId": pushed["eventId"], "signed": True}]
    assert len(acks(app, pushed["eventId"])) == 1, "no redelivery"
    assert FORWARD_SECRET not in bot_log(fleet, bot_id)


def test_worker_killed_while_handling_replies_once_after_restart(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    with ForwardTarget(FORWARD_SECRET, SLOW) as target:
        handler = {"kind": "forward", "url": target.url, "secret": FORWARD_SECRET}
        bot_id, status = connected_bot(fleet, app, handler=handler)
        pushed = app.push("survive a crash")
        wait_until(lambda: target.requests, 5, "the handler to be running")
        fleet.wait_status(bot_id, lambda s: s["eventsReceived"] == 1, 3, "the event counted")
        os.kill(status["pid"], signal.SIGKILL)
        fleet.wait_status(bot_id, lambda s: s["state"] == "connected" and
                          s["pid"] not in (None, status["pid"]), 15, "a new connected worker")
        wait_until(lambda: len(target.requests) == 2, 10, "the event processed again")
        wait_replies(app, pushed["messageId"], SLOW + 5)
        after = settled(fleet, bot_id, time.time(), repliesSent=1)
    sent = replies_to(app, pushed["messageId"])
    assert len({s["uuid"] for s in sent}) == 1
    assert 1 <= len(sent) <= 2 and all(s.get("duplicate") for s in sent[1:])
    assert after["restarts"] == status["restarts"] + 1
    samples = metric_samples(fleet)
    label = (("bot_id", bot_id),)
    assert samples[("larkfleet_bot_events_received_total", label)] == 1, "kept across restart"
    assert samples[("larkfleet_bot_restarts_total", label)] == after["restarts"]


def test_raising_handler_is_dead_lettered_then_retried_through_the_api(
    fleet: Service, sim_app: Callable[..., SimApp], handlers_dir: Path
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app, handler={"kind": "python",
                                                   "target": "e2e_flaky:answer"})
    pushed = app.push("try again")
    event_id = pushed["eventId"]
    fleet.wait_status(bot_id, lambda s: s["deadLetters"] == 1 and s["pending"] == 0, 10,
                      "a dead letter")
    response = fleet.request("GET", f"/api/feishu/bots/{bot_id}/dead-letters")
    assert response.status_code == 200, response.text
    [letter] = response.json()["deadLetters"]
    assert (letter["eventId"], letter["attempts"]) == (event_id, 3)
    assert "flag not set yet" in letter["lastError"]
    assert app.sent() == []

    (handlers_dir / "flaky.ok").touch()
    response = fleet.request("POST", f"/api/feishu/bots/{bot_id}/dead-letters/{event_id}/retry")
    assert response.status_code == 200, response.text
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == "recovered: try again"
    settled(fleet, bot_id, time.time(), deadLetters=0, repliesSent=1)
    assert fleet.request("GET", f"/api/feishu/bots/{bot_id}/dead-letters").json()[
        "deadLetters"] == []
    label = (("bot_id", bot_id),)
    assert metric_samples(fleet)[("larkfleet_bot_events_failed_total", label)] == 3


def test_a_handler_reading_sdk_apis_the_zygote_left_out_works_and_the_log_says_so(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    """The zygote preloads only what larkfleet uses (LARKFLEET_SDK_PRELOAD=used, the
    default): a handler that reads another SDK API still gets it, and its bot's log names
    the setting that would share those modules instead, once."""
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app, handler={"kind": "python",
                                                   "target": "e2e_sdk_reader:answer"})
    for text in ("first", "second"):
        pushed = app.push(text)
        [reply] = wait_replies(app, pushed["messageId"])
        assert reply["text"] == f"GetContentRequest: {text}"
    log = wait_until(lambda: (text := bot_log(fleet, bot_id)) and LATE_SDK_WARNING in text
                     and text, 5, "the warning in the bot's log")
    [line] = [line for line in log.splitlines() if LATE_SDK_WARNING in line]
    assert "WARNING" in line and "lark_oapi.api.docs.v1" in line, line
    assert "LARKFLEET_SDK_PRELOAD=all" in line, line


def test_group_message_needs_a_mention_which_is_stripped(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(botOpenId="ou_the_bot")
    bot_id, _ = connected_bot(fleet, app)
    chat = "oc_group_" + uuid.uuid4().hex[:8]
    ignored = app.push("hello everyone", chat_type="group", chat_id=chat)
    mention = {"key": "@_user_1", "name": f"bot-{app.app_id}", "openId": "ou_the_bot"}
    asked = app.push("@_user_1 what time is it", chat_type="group", chat_id=chat,
                     mentions=[mention])
    [reply] = wait_replies(app, asked["messageId"])
    assert reply["text"] == "what time is it"
    settled(fleet, bot_id, time.time(), eventsReceived=2, repliesSent=1)
    assert replies_to(app, ignored["messageId"]) == [] and len(app.sent()) == 1
    assert f"event {ignored['eventId']} ignored" in bot_log(fleet, bot_id)


def test_webhook_mode_challenge_encrypted_event_and_tampered_push(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(verification_token=TOKEN, encrypt_key=KEY)
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, useWebSocket=False,
                              verificationToken=TOKEN, encryptKey=KEY)
    assert fleet.status(bot_id)["state"] == "webhook"
    url = f"{fleet.url}/webhook/feishu/{bot_id}"

    pushed = app.client.webhook(app.app_id, url, text="through the webhook")
    assert pushed["status"] == 200, "a push right after creation waits for the worker"

    started = time.monotonic()
    challenge = app.client.webhook(app.app_id, url, challenge=True)
    assert time.monotonic() - started < 1.0
    assert challenge["status"] == 200, challenge
    assert json.loads(challenge["body"]) == {"challenge": challenge["challenge"]}

    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == "through the webhook"

    forged = app.client.webhook(app.app_id, url, text="forged", tamper=True)
    assert forged["status"] == 401, forged
    assert json.loads(forged["body"])["error"]["code"] == "invalid_signature"
    settled(fleet, bot_id, time.time(), eventsReceived=1, repliesSent=1)
    assert replies_to(app, forged["messageId"]) == [] and len(app.sent()) == 1
    assert KEY not in bot_log(fleet, bot_id)


def test_outbound_message_goes_through_the_bot(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    body = {"receiveId": "ou_someone", "receiveIdType": "open_id", "text": "outbound hello"}
    response = fleet.request("POST", f"/api/feishu/bots/{bot_id}/messages", json=body)
    assert response.status_code == 200, response.text
    [sent] = app.sent()
    assert (sent["kind"], sent["receiveId"], sent["receiveIdType"], sent["text"]) == (
        "create", "ou_someone", "open_id", "outbound hello")
    assert sent["messageId"] == response.json()["messageId"]


def test_a_handler_that_kills_its_worker_is_dead_lettered_and_the_chat_moves_on(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    """Attempts count when the row is taken, so os._exit inside the handler counts too."""
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app, handler={"kind": "python",
                                                   "target": "e2e_crashing:answer"})
    poison = app.push("poison", chat_id="oc_poisoned")
    fleet.wait_status(bot_id, lambda s: s["deadLetters"] == 1 and s["state"] == "connected",
                      30, "the poison event dead-lettered, the bot connected")
    [letter] = fleet.request("GET", f"/api/feishu/bots/{bot_id}/dead-letters").json()[
        "deadLetters"]
    assert (letter["eventId"], letter["attempts"]) == (poison["eventId"], 3)
    assert "ended with its worker" in letter["lastError"]

    later = app.push("after", chat_id="oc_poisoned")
    [reply] = wait_replies(app, later["messageId"])
    assert reply["text"] == "fine: after"
    status = fleet.status(bot_id)
    assert status["state"] == "connected" and status["restarts"] == 3, status
    assert replies_to(app, poison["messageId"]) == []
