"""Field cases (shared field-cases.md rows 1-6, 13) through the real service and simulator.

Messages as the platform really sends them: @all announcements, mention keys
past 9, other users' mentions, the bot under its Feishu display name, the same
message under a new event id, two bots in one message, a withdrawn reply
target, and messages sent by apps. Each was answered wrongly before issue 13.
"""

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from shared.idempotency import send_uuid
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp
from tests.test_event_e2e import (
    bot_log,
    connected_bot,
    metric_samples,
    replies_to,
    settled,
    wait_replies,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fleet(field_fleet: Service) -> Service:
    return field_fleet


def _group() -> str:
    return "oc_group_" + uuid.uuid4().hex[:8]


def _bot(fleet: Service, sim_app: Callable[..., SimApp], **options: Any) -> tuple[str, SimApp]:
    app = sim_app(botOpenId="ou_bot_" + uuid.uuid4().hex[:8], botName="HelpDesk Bot")
    fields = {"options": options} if options else {}
    bot_id, _ = connected_bot(fleet, app, name="support", **fields)
    return bot_id, app


def _open_id(app: SimApp) -> str:
    return app.info()["botOpenId"]


def _answered_nothing(fleet: Service, bot_id: str, app: SimApp, count: int) -> None:
    """Every pushed event finished (pending 0), none answered."""
    settled(fleet, bot_id, time.time(), eventsReceived=count, repliesSent=0)
    assert app.sent() == []


def test_row1_at_all_is_not_a_mention_unless_the_bot_opts_in(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    at_all = [{"key": "@_all", "name": "所有人", "openId": ""}]
    text = "@_all standup moved to 10:00"
    bot_id, app = _bot(fleet, sim_app)
    pushed = app.push(text, chat_type="group", chat_id=_group(), mentions=at_all)
    _answered_nothing(fleet, bot_id, app, 1)
    assert f"event {pushed['eventId']} ignored: @all announcement" in bot_log(fleet, bot_id)

    _opted_id, opted = _bot(fleet, sim_app, answerAtAll=True)
    asked = opted.push(text, chat_type="group", chat_id=_group(), mentions=at_all)
    [reply] = wait_replies(opted, asked["messageId"])
    assert reply["text"] == "standup moved to 10:00"


def test_row2_mention_keys_past_nine_are_whole_tokens(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    _bot_id, app = _bot(fleet, sim_app)
    mentions = [{"key": "@_user_1", "name": "support", "openId": _open_id(app)}]
    mentions += [{"key": f"@_user_{i}", "name": f"U{i}", "openId": f"ou_u{i}"}
                 for i in range(2, 12)]
    pushed = app.push("@_user_1 ping @_user_10 and @_user_11", chat_type="group",
                      chat_id=_group(), mentions=mentions)
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == "ping @U10 and @U11"


def test_row3_the_bot_is_its_own_open_id_not_a_name_or_the_first_mention(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    bot_id, app = _bot(fleet, sim_app)
    alice = {"key": "@_user_1", "name": "Alice", "openId": "ou_alice"}
    chat = _group()
    other = app.push("@_user_1 can you review my PR?", chat_type="group", chat_id=chat,
                     mentions=[alice])
    helpdesk = {"key": "@_user_2", "name": "HelpDesk Bot", "openId": _open_id(app)}
    asked = app.push("@_user_1 please ask @_user_2 about it", chat_type="group", chat_id=chat,
                     mentions=[alice, helpdesk])
    [reply] = wait_replies(app, asked["messageId"])
    assert reply["text"] == "@Alice please ask about it"
    settled(fleet, bot_id, time.time(), eventsReceived=2, repliesSent=1)
    assert replies_to(app, other["messageId"]) == []
    assert app.info()["botInfoCalls"] == 1, "the open_id is fetched once and cached"


def test_row4_same_message_under_a_new_event_id_is_answered_once(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    bot_id, app = _bot(fleet, sim_app)
    message_id = "om_same_" + uuid.uuid4().hex[:8]
    first = app.push("hello once", event_id=f"ev_first_{message_id}", message_id=message_id,
                     chat_id="oc_x")
    [reply] = wait_replies(app, message_id)
    second = app.push("hello once", event_id=f"ev_second_{message_id}", message_id=message_id,
                      chat_id="oc_x")
    wait_until(lambda: any(a["eventId"] == second["eventId"] and a["code"] == 200
                           for a in app.info()["acked"]), 5, "the second push ACKed")
    settled(fleet, bot_id, time.time(), eventsReceived=1, repliesSent=1)
    assert first["messageId"] == second["messageId"]
    assert replies_to(app, message_id) == [reply]
    assert reply["uuid"] == send_uuid(message_id), "the uuid comes from the message answered"


def test_row5_two_bots_mentioned_in_one_message_each_answer_once(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    alpha_id, alpha = _bot(fleet, sim_app)
    beta_id, beta = _bot(fleet, sim_app)
    mentions = [{"key": "@_user_1", "name": "alpha", "openId": _open_id(alpha)},
                {"key": "@_user_2", "name": "beta", "openId": _open_id(beta)}]
    chat, message_id = _group(), "om_shared_" + uuid.uuid4().hex[:8]
    for app in (alpha, beta):
        app.push("@_user_1 @_user_2 status?", chat_type="group", chat_id=chat,
                 message_id=message_id, mentions=mentions)
    [to_alpha] = wait_replies(alpha, message_id)
    [to_beta] = wait_replies(beta, message_id)
    assert (to_alpha["text"], to_beta["text"]) == ("@beta status?", "@alpha status?")
    settled(fleet, alpha_id, time.time(), repliesSent=1)
    settled(fleet, beta_id, time.time(), repliesSent=1)


def test_row6_withdrawn_target_is_dropped_at_once_and_never_holds_the_chat(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    bot_id, app = _bot(fleet, sim_app)
    app.faults(imErrors={"count": 20, "code": 230011, "status": 400,
                         "msg": "The message was withdrawn."})
    started = time.monotonic()
    first = app.push("answer me", chat_id="oc_withdrawn")
    second = app.push("and me", chat_id="oc_withdrawn")
    status = settled(fleet, bot_id, time.time(), eventsReceived=2, repliesSent=0)
    assert time.monotonic() - started < 5, "no retries, and the chat was not held back"
    assert status["deadLetters"] == 0
    log = bot_log(fleet, bot_id)
    for pushed in (first, second):
        assert f"event {pushed['eventId']}: answer dropped: the message to answer is gone" in log
    label = (("bot_id", bot_id),)
    wait_until(lambda: metric_samples(fleet).get(("larkfleet_bot_replies_dropped_total", label))
               == 2, 5, "two dropped answers counted")
    app.faults(imErrors={"count": 0})
    third = app.push("still here", chat_id="oc_withdrawn")
    assert wait_replies(app, third["messageId"])[0]["text"] == "still here"


def test_row6_withdrawn_target_answered_in_the_chat_when_configured(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    bot_id, app = _bot(fleet, sim_app, replyFallback="send")
    app.faults(imErrors={"count": 1, "code": 231003, "status": 400,
                         "msg": "The message is not found"})
    pushed = app.push("answer me anyway", chat_id="oc_fallback")
    [sent] = wait_until(app.sent, 10, "the answer sent to the chat")
    assert (sent["kind"], sent["receiveIdType"], sent["receiveId"], sent["text"]) == (
        "create", "chat_id", "oc_fallback", "answer me anyway")
    assert sent["uuid"] == send_uuid(pushed["messageId"])
    assert settled(fleet, bot_id, time.time(), repliesSent=1)["deadLetters"] == 0


def test_row13_messages_from_apps_never_loop(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    bot_id, app = _bot(fleet, sim_app)
    app.push("echo me", sender_type="app", open_id=_open_id(app))
    app.push("echo me", sender_type="app", open_id="ou_another_bot")
    _answered_nothing(fleet, bot_id, app, 2)
    assert "ignored: message sent by an app" in bot_log(fleet, bot_id)

    open_id, friendly = _bot(fleet, sim_app, answerBots=True)
    own = friendly.push("my own words", sender_type="app", open_id=_open_id(friendly))
    other = friendly.push("hello from a bot", sender_type="app", open_id="ou_another_bot")
    [reply] = wait_replies(friendly, other["messageId"])
    assert reply["text"] == "hello from a bot"
    settled(fleet, open_id, time.time(), eventsReceived=2, repliesSent=1)
    assert replies_to(friendly, own["messageId"]) == []


def test_echo_cannot_notify_everyone(fleet: Service, sim_app: Callable[..., SimApp]) -> None:
    _bot_id, app = _bot(fleet, sim_app)
    pushed = app.push('<at user_id="all">所有人</at> free pizza')
    [reply] = wait_replies(app, pushed["messageId"])
    assert reply["text"] == "@所有人 free pizza"



def test_row20_one_app_on_two_hosts_shows_one_reply(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected_bot(fleet, app, name="host-a", shared=True)  # an admin lets the app be shared
    user = fleet.request("POST", "/api/users", json={"name": "other-" + uuid.uuid4().hex[:6]})
    assert user.status_code == 201, user.text
    other = requests.Session()
    other.headers["Authorization"] = f"Bearer {user.json()['token']}"
    body = {"name": "host-b", "appId": app.app_id, "appSecret": app.app_secret,
            "domain": app.url}
    created = other.post(f"{fleet.url}/api/feishu/bots", json=body, timeout=10)
    assert created.status_code == 201, created.text
    bot_b = created.json()["id"]
    assert other.post(f"{fleet.url}/api/feishu/bots/{bot_b}/ws/connect",
                      timeout=10).status_code == 202
    wait_until(lambda: app.info()["connections"] == 2, 15, "two connections of one app")
    pushed = app.push("answer once")
    for _ in range(6):
        app.redeliver(pushed["eventId"])
    wait_until(lambda: len([a for a in app.info()["acked"]
                            if a["eventId"] == pushed["eventId"]]) >= 7, 10, "seven ACKs")
    sent = wait_replies(app, pushed["messageId"])
    visible = [s for s in sent if not s.get("duplicate")]
    assert len(visible) == 1 and visible[0]["text"] == "answer once"
    assert {s["uuid"] for s in sent} == {send_uuid(pushed["messageId"])}
