"""Tokens and IM reply/create through the real lark.Client against the simulator."""

from __future__ import annotations

import json

import lark_oapi as lark
import requests
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)


def _client(app) -> lark.Client:
    return (
        lark.Client.builder()
        .app_id(app.app_id)
        .app_secret(app.app_secret)
        .domain(app.url)
        .log_level(lark.LogLevel.WARNING)
        .build()
    )


def _reply(client: lark.Client, message_id: str, text: str, uuid: str | None = None):
    body = ReplyMessageRequestBody.builder().content(json.dumps({"text": text})).msg_type("text")
    if uuid:
        body = body.uuid(uuid)
    request = ReplyMessageRequest.builder().message_id(message_id).request_body(body.build())
    return client.im.v1.message.reply(request.build())


def test_token_reply_and_create_are_recorded(sim_app) -> None:
    app = sim_app()
    client = _client(app)
    first = _reply(client, "om_parent", "pong", uuid="u-1")
    assert first.success(), first.msg
    assert first.data.message_id.startswith("om_")
    assert first.data.parent_id == "om_parent"

    create = (
        CreateMessageRequest.builder()
        .receive_id_type("chat_id")
        .request_body(
            CreateMessageRequestBody.builder()
            .receive_id("oc_chat")
            .msg_type("text")
            .content(json.dumps({"text": "hi"}))
            .uuid("u-2")
            .build()
        )
        .build()
    )
    created = client.im.v1.message.create(create)
    assert created.success(), created.msg

    again = _reply(client, "om_parent", "pong", uuid="u-1")
    assert again.data.message_id == first.data.message_id

    sent = app.sent()
    assert [s["kind"] for s in sent] == ["reply", "create", "reply"]
    assert sent[0]["replyTo"] == "om_parent" and sent[0]["text"] == "pong"
    assert sent[0]["uuid"] == "u-1" and sent[0]["content"] == json.dumps({"text": "pong"})
    assert sent[1]["receiveId"] == "oc_chat" and sent[1]["receiveIdType"] == "chat_id"
    assert sent[2].get("duplicate") is True
    assert app.info()["sent"] == sent


def test_token_endpoint_shape_and_wrong_secret(sim_app) -> None:
    app = sim_app(tokenExpire=600)
    url = app.url + "/open-apis/auth/v3/tenant_access_token/internal"
    ok = requests.post(
        url, data=json.dumps({"app_id": app.app_id, "app_secret": app.app_secret}), timeout=5
    ).json()
    assert ok["code"] == 0 and ok["tenant_access_token"].startswith("t-") and ok["expire"] == 600
    bad = requests.post(url, json={"app_id": app.app_id, "app_secret": "x"}, timeout=5).json()
    assert bad["code"] != 0 and bad["msg"]


def test_missing_and_invalid_token_refused(sim_app) -> None:
    app = sim_app()
    url = app.url + "/open-apis/im/v1/messages/om_x/reply"
    body = {"msg_type": "text", "content": json.dumps({"text": "x"})}
    missing = requests.post(url, json=body, timeout=5)
    assert missing.status_code == 400 and missing.json()["code"] == 99991661
    invalid = requests.post(url, json=body, headers={"Authorization": "Bearer t-nope"}, timeout=5)
    assert invalid.status_code == 400 and invalid.json()["code"] == 99991663
    assert app.sent() == []


def test_injected_im_errors(sim_app) -> None:
    app = sim_app()
    client = _client(app)
    app.faults(imErrors={"count": 2, "code": 99991400, "status": 429})
    codes = [_reply(client, "om_p", "x").code for _ in range(3)]
    assert codes == [99991400, 99991400, 0]
    assert len(app.sent()) == 1


def test_upload_with_a_file_name_that_is_not_utf8_is_400(sim_app) -> None:
    app = sim_app()
    token = requests.post(app.url + "/open-apis/auth/v3/tenant_access_token/internal",
                          json={"app_id": app.app_id, "app_secret": app.app_secret},
                          timeout=5).json()["tenant_access_token"]
    files = {"file": ("blob", b"data"), "file_type": (None, b"stream"),
             "file_name": (None, b"\xff\xfe")}
    resp = requests.post(app.url + "/open-apis/im/v1/files", files=files,
                         headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 400 and "file_name" in resp.json()["msg"], resp.text
