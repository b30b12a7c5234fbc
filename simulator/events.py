"""Event envelopes as the platform sends them over WS and webhook.

A push either describes an IM message (`MessageSpec`, everything else
generated) or gives the whole raw body (`body`: any event type, v2
`{"schema": "2.0", "header", "event"}` or v1 `{"uuid", "type": "event_callback",
"event"}`), sent unchanged. Non-message `eventType`s without a body get the
event shape their platform doc shows, not a message body. Content and
bodies are encoded as raw UTF-8, as Feishu sends them (`\\u` escapes would
double the size of CJK text against the 150 KB limit).
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any, Literal

import msgspec

from simulator.state import App, now_ms

MESSAGE_EVENT = "im.message.receive_v1"


class Mention(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    key: str
    name: str = ""
    open_id: str = ""


class MessageSpec(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """What a test can say about an incoming event; everything else is generated."""

    text: str = ""
    chat_id: str | None = None
    open_id: str | None = None
    """The sender's open_id (for `senderType: "app"`, the sending bot's)."""
    chat_type: Literal["p2p", "group"] = "p2p"
    event_id: str | None = None
    message_id: str | None = None
    message_type: str = "text"
    content: str | None = None
    mentions: list[Mention] = msgspec.field(default_factory=list)
    event_type: str = MESSAGE_EVENT
    sender_type: Literal["user", "app"] = "user"
    root_id: str = ""
    parent_id: str = ""
    thread_id: str = ""
    body: dict[str, Any] | None = None
    """A raw event body sent as is (any type, v1 or v2); the other fields are then unused."""


def encode(envelope: dict[str, Any]) -> bytes:
    """The wire bytes of a body: compact raw UTF-8 JSON."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def build_event(app: App, spec: MessageSpec) -> tuple[str, str, dict[str, Any]]:
    """Returns (event_id, message_id, envelope); ids are minted when the spec has none.

    For a raw `body`, event_id is its `header.event_id` (v2) or `uuid` (v1),
    minted into the body when missing; message_id is its message's, or "".
    """
    if spec.body is not None:
        return _raw(spec.body)
    event_id = spec.event_id or uuid.uuid4().hex
    message_id = spec.message_id or "om_" + secrets.token_hex(16)
    open_id = spec.open_id or "ou_" + secrets.token_hex(16)
    chat_id = spec.chat_id or "oc_" + secrets.token_hex(16)
    created = str(now_ms())
    header = {
        "event_id": event_id,
        "event_type": spec.event_type,
        "create_time": created,
        "token": app.verification_token,
        "app_id": app.app_id,
        "tenant_key": app.tenant_key,
    }
    user = {"open_id": open_id, "union_id": "on_" + open_id[3:], "user_id": ""}
    if spec.event_type != MESSAGE_EVENT:
        event = _other_event(spec.event_type, app, user, chat_id, message_id, created)
        return event_id, message_id, {"schema": "2.0", "header": header, "event": event}
    content = spec.content
    if content is None:
        content = json.dumps({"text": spec.text}, ensure_ascii=False)
    app.chats[message_id] = chat_id
    if spec.thread_id:
        app.threads[message_id] = spec.thread_id
    event = {
        "sender": {
            "sender_id": user,
            "sender_type": spec.sender_type,
            "tenant_key": app.tenant_key,
        },
        "message": {
            "message_id": message_id,
            "root_id": spec.root_id,
            "parent_id": spec.parent_id,
            "thread_id": spec.thread_id,
            "create_time": created,
            "update_time": created,
            "chat_id": chat_id,
            "chat_type": spec.chat_type,
            "message_type": spec.message_type,
            "content": content,
            "mentions": [
                {
                    "key": m.key,
                    "id": {"open_id": m.open_id, "union_id": "", "user_id": ""},
                    "name": m.name,
                    "tenant_key": app.tenant_key,
                }
                for m in spec.mentions
            ],
        },
    }
    return event_id, message_id, {"schema": "2.0", "header": header, "event": event}


def _raw(body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    header = body.get("header")
    if isinstance(header, dict):
        event_id = str(header.get("event_id") or "") or uuid.uuid4().hex
        header["event_id"] = event_id
    else:
        event_id = str(body.get("uuid") or "") or uuid.uuid4().hex
        body["uuid"] = event_id
    event = body.get("event")
    message = event.get("message") if isinstance(event, dict) else None
    message_id = message.get("message_id", "") if isinstance(message, dict) else ""
    return event_id, str(message_id or ""), body


def _other_event(
    event_type: str, app: App, user: dict[str, str], chat_id: str, message_id: str, created: str
) -> dict[str, Any]:
    """The `event` object of a non-message type, shaped as its platform doc shows."""
    tenant = app.tenant_key
    if event_type in ("im.chat.member.bot.added_v1", "im.chat.member.bot.deleted_v1"):
        return {"chat_id": chat_id, "operator_id": user, "external": False,
                "operator_tenant_key": tenant, "name": "group", "i18n_names": {}}
    if event_type == "im.chat.access_event.bot_p2p_chat_entered_v1":
        return {"chat_id": chat_id, "operator_id": user, "last_message_id": "",
                "last_message_create_time": ""}
    if event_type == "im.message.message_read_v1":
        return {"reader": {"reader_id": user, "read_time": created, "tenant_key": tenant},
                "message_id_list": [message_id]}
    if event_type == "im.message.recalled_v1":
        return {"message_id": message_id, "chat_id": chat_id, "recall_time": created,
                "recall_type": "message_owner"}
    if event_type in ("im.message.reaction.created_v1", "im.message.reaction.deleted_v1"):
        return {"message_id": message_id, "reaction_type": {"emoji_type": "SMILE"},
                "operator_type": "user", "user_id": user, "action_time": created}
    return {"operator": {"operator_id": user}, "chat_id": chat_id}
