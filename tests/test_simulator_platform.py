"""What the simulator can say about the platform since issue 13: raw and non-message
event bodies, senders, mentions and threads, the bot info endpoint, size refusals, token
revocation, uuid lifetime, endpoint refusal codes and the platform's URL and ClientConfig."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlparse

import lark_oapi as lark
import pytest
import requests

from simulator.testing import WsClientThread, wait_until


class RawInbox:
    """Duck-types the SDK's event handler: keeps every payload exactly as it arrived."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()

    def _do_without_validation(self, payload: bytes) -> None:
        with self.lock:
            self.payloads.append(payload)

    def wait(self, count: int) -> list[bytes]:
        return wait_until(lambda: len(self.payloads) >= count and list(self.payloads), 5,
                          f"{count} payloads")


@pytest.fixture
def connected(sim):
    clients: list[WsClientThread] = []

    def make(app) -> RawInbox:
        inbox = RawInbox()
        clients.append(WsClientThread(app.app_id, app.app_secret, sim.url, inbox,
                                      log_level=lark.LogLevel.WARNING).start())
        wait_until(lambda: app.info()["connections"] >= 1, 5, "client connected")
        return inbox

    yield make
    for client in clients:
        client.stop()


def _token(app) -> str:
    body = {"app_id": app.app_id, "app_secret": app.app_secret}
    answer = requests.post(f"{app.url}/open-apis/auth/v3/tenant_access_token/internal",
                           json=body, timeout=5).json()
    return answer["tenant_access_token"]


def _send(app, token: str, text: str = "x", msg_type: str = "text", content: str | None = None,
          uuid: str | None = None) -> requests.Response:
    body: dict[str, Any] = {"msg_type": msg_type,
                            "content": content or json.dumps({"text": text}, ensure_ascii=False)}
    if uuid:
        body["uuid"] = uuid
    return requests.post(f"{app.url}/open-apis/im/v1/messages/om_parent/reply", json=body,
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_raw_v1_and_v2_bodies_are_pushed_unchanged_as_utf8(sim_app, connected) -> None:
    app = sim_app()
    inbox = connected(app)
    v1 = {"uuid": "u-v1-1", "token": "", "ts": "1.0", "type": "event_callback",
          "event": {"type": "p2p_chat_create", "app_id": app.app_id, "chat_id": "oc_1"}}
    pushed = app.push(body=v1)
    assert pushed == {"eventId": "u-v1-1", "messageId": ""}
    v2 = {"schema": "2.0", "header": {"event_type": "im.chat.member.bot.added_v1"},
          "event": {"chat_id": "oc_2"}}
    minted = app.push(body=v2)["eventId"]
    app.push("你好世界")
    first, second, third = inbox.wait(3)
    assert json.loads(first) == v1
    assert json.loads(second)["header"] == {"event_type": "im.chat.member.bot.added_v1",
                                            "event_id": minted}
    assert "你好世界".encode() in third, "content as raw UTF-8, not \\u escapes"


def test_sender_mentions_and_thread_fields(sim_app, connected) -> None:
    app = sim_app()
    inbox = connected(app)
    app.push("@_user_1 hi", chat_type="group", sender_type="app", open_id="ou_other_bot",
             root_id="om_root", parent_id="om_parent", thread_id="omt_1",
             mentions=[{"key": "@_user_1", "name": "Alice", "openId": "ou_alice"}])
    app.push(event_type="im.message.recalled_v1", message_id="om_gone", chat_id="oc_x")
    raw_message, raw_recall = inbox.wait(2)
    event = json.loads(raw_message)["event"]
    assert event["sender"]["sender_type"] == "app"
    assert event["sender"]["sender_id"]["open_id"] == "ou_other_bot"
    message = event["message"]
    assert (message["root_id"], message["parent_id"], message["thread_id"]) == (
        "om_root", "om_parent", "omt_1")
    assert message["mentions"][0]["id"]["open_id"] == "ou_alice"
    recall = json.loads(raw_recall)
    assert recall["header"]["event_type"] == "im.message.recalled_v1"
    assert recall["event"] == {"message_id": "om_gone", "chat_id": "oc_x", "recall_type":
                               "message_owner", "recall_time": recall["event"]["recall_time"]}


def test_bot_info_answers_the_bots_open_id(sim_app) -> None:
    app = sim_app(botOpenId="ou_the_bot_1", botName="HelpDesk Bot")
    url = f"{app.url}/open-apis/bot/v3/info"
    assert requests.get(url, timeout=5).json()["code"] == 99991661
    answer = requests.get(url, headers={"Authorization": f"Bearer {_token(app)}"}, timeout=5)
    assert answer.json()["bot"]["open_id"] == "ou_the_bot_1"
    assert answer.json()["bot"]["app_name"] == "HelpDesk Bot"
    info = app.info()
    assert (info["botOpenId"], info["botInfoCalls"]) == ("ou_the_bot_1", 1)


def test_sends_over_the_size_limits_are_refused_with_230025(sim_app) -> None:
    app = sim_app()
    token = _token(app)
    assert _send(app, token, "x" * (140 * 1024)).json()["code"] == 0
    too_long = _send(app, token, "x" * (151 * 1024))
    assert (too_long.status_code, too_long.json()["code"]) == (400, 230025)
    assert "data" in too_long.json()
    post = json.dumps({"zh_cn": {"title": "t", "content": [[{"tag": "text",
                                                             "text": "y" * 31 * 1024}]]}})
    assert _send(app, token, msg_type="post", content=post).json()["code"] == 230025
    assert len(app.sent()) == 1


def test_invalidated_token_is_refused_and_token_requests_are_counted(sim_app) -> None:
    app = sim_app()
    token = _token(app)
    assert _token(app) == token, "the same token while it has more than 30 min left"
    assert _send(app, token).json()["code"] == 0
    app.faults(invalidateToken=True)
    refused = _send(app, token)
    assert (refused.status_code, refused.json()["code"]) == (400, 99991663)
    fresh = _token(app)
    assert fresh != token and _send(app, fresh).json()["code"] == 0
    assert app.info()["tokenRequests"] == 3


def test_uuid_deduplicates_for_its_lifetime_only(sim_app) -> None:
    app = sim_app(uuidTtl=0.5)
    token = _token(app)
    first = _send(app, token, uuid="u-ttl").json()["data"]["message_id"]
    again = _send(app, token, uuid="u-ttl").json()["data"]["message_id"]
    assert again == first and app.sent()[1]["duplicate"] is True
    wait_until(lambda: _send(app, token, uuid="u-ttl").json()["data"]["message_id"] != first,
               5, "the uuid to expire")
    assert "duplicate" not in app.sent()[-1]


def test_endpoint_url_config_and_refusal_codes(sim_app) -> None:
    app = sim_app(pingInterval=7)
    url = f"{app.url}/callback/ws/endpoint"
    body = {"AppID": app.app_id, "AppSecret": app.app_secret}
    answer = requests.post(url, json=body, timeout=5).json()
    query = urlparse(answer["data"]["URL"]).query
    assert [p.split("=")[0] for p in query.split("&")][:3] == ["fpid", "device_id", "service_id"]
    config = answer["data"]["ClientConfig"]
    assert config["PingInterval"] == 7 and all(type(v) is int for v in config.values())
    app.faults(endpointError={"code": 1000040351, "msg": "Incorrect domain name"})
    refused = requests.post(url, json=body, timeout=5).json()
    assert refused == {"code": 1000040351, "msg": "Incorrect domain name", "data": {}}
    app.faults(endpointError=None)
    bad = requests.post(url, json={**body, "AppSecret": "wrong"}, timeout=5).json()
    assert bad["data"] == {} and bad["code"] != 0
    fractional = requests.post(f"{app.url}/_sim/apps", timeout=5, json={
        "appId": "cli_fraction", "appSecret": "s", "pingInterval": 1.5})
    assert fractional.status_code == 400 and "pingInterval" in fractional.json()["error"]
