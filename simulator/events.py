"""v2 event envelopes as the platform sends them over WS and webhook."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any, Literal

import msgspec

from simulator.state import App, now_ms


class Mention(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    key: str
    name: str = ""
    open_id: str = ""


class MessageSpec(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """What a test can say about an incoming IM message; everything else is generated."""

    text: str = ""
    chat_id: str | None = None
    open_id: str | None = None
    chat_type: Literal["p2p", "group"] = "p2p"
    event_id: str | None = None
    message_id: str | None = None
    message_type: str = "text"
    content: str | None = None
    mentions: list[Mention] = msgspec.field(default_factory=list)
    event_type: str = "im.message.receive_v1"


def build_event(app: App, spec: MessageSpec) -> tuple[str, str, dict[str, Any]]:
    """Returns (event_id, message_id, envelope); ids are minted when the spec has none."""
    event_id = spec.event_id or uuid.uuid4().hex
    message_id = spec.message_id or "om_" + secrets.token_hex(16)
    open_id = spec.open_id or "ou_" + secrets.token_hex(16)
    chat_id = spec.chat_id or "oc_" + secrets.token_hex(16)
    content = spec.content if spec.content is not None else json.dumps({"text": spec.text})
    created = str(now_ms())
    app.chats[message_id] = chat_id
    envelope = {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": spec.event_type,
            "create_time": created,
            "token": app.verification_token,
            "app_id": app.app_id,
            "tenant_key": app.tenant_key,
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": open_id, "union_id": "on_" + open_id[3:]},
                "sender_type": "user",
                "tenant_key": app.tenant_key,
            },
            "message": {
                "message_id": message_id,
                "root_id": "",
                "parent_id": "",
                "thread_id": "",
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
        },
    }
    return event_id, message_id, envelope
