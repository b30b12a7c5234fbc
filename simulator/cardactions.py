"""Card action callbacks (`card.action.trigger`): pushed to a bot, its answer recorded.

The platform sends a click on a card button as a v2 event and waits about 3 s
for the answer (feishu-protocol.md 1.6, 3.5): over the long connection the
answer travels in the ACK's `data` (base64 JSON), over webhook as the HTTP
response body. `POST /_sim/apps/{appId}/card-actions` pushes one on either
path (`url` = webhook) and answers with what came back and how long it took;
every push is kept in the app's `cardActions`. `legacyFrame` sends the old
`type=card` frame instead, which every SDK drops without an ACK.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from simulator import crypto
from simulator.control import _start, decode, known_app
from simulator.state import STATE_KEY, App, now_ms

routes = web.RouteTableDef()

CARD_ACTION_EVENT = "card.action.trigger"


class CardActionPush(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    value: Any = msgspec.field(default_factory=dict)
    tag: str = "button"
    form_value: dict[str, Any] | None = None
    open_id: str | None = None
    message_id: str | None = None
    chat_id: str | None = None
    event_id: str | None = None
    url: str | None = None
    """Push over webhook to this URL; over the long connection when absent."""
    encrypt: bool | None = None
    legacy_frame: bool = False
    timeout: float = 5.0
    """How long to wait for the answer (the platform itself gives up after ~3 s)."""


def build_card_action(app: App, push: CardActionPush) -> tuple[str, dict[str, Any]]:
    """(event_id, v2 envelope) as the platform sends a card click (SDK
    event/callback/model/p2_card_action_trigger.py)."""
    event_id = push.event_id or uuid.uuid4().hex
    open_id = push.open_id or "ou_" + secrets.token_hex(16)
    action: dict[str, Any] = {"value": push.value, "tag": push.tag}
    if push.form_value is not None:
        action["form_value"] = push.form_value
    envelope = {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": CARD_ACTION_EVENT,
            "create_time": str(now_ms()),
            "token": app.verification_token,
            "app_id": app.app_id,
            "tenant_key": app.tenant_key,
        },
        "event": {
            "operator": {"tenant_key": app.tenant_key, "open_id": open_id,
                         "union_id": "on_" + open_id[3:]},
            "token": "c-" + secrets.token_hex(16),
            "action": action,
            "host": "im_message",
            "context": {
                "open_message_id": push.message_id or "om_" + secrets.token_hex(16),
                "open_chat_id": push.chat_id or "oc_" + secrets.token_hex(16),
            },
        },
    }
    return event_id, envelope


@routes.post("/_sim/apps/{app_id}/card-actions")
async def push_card_action(request: web.Request) -> web.Response:
    """Answers `{eventId, via, response, seconds, ...}`; `response` is the decoded answer
    (null for an empty ACK or none in time)."""
    app = known_app(request)
    body = await decode(request, CardActionPush)
    event_id, envelope = build_card_action(app, body)
    started = time.monotonic()
    if body.url is None:
        if not app.connections:
            return web.json_response({"error": "app has no live connection"}, status=404)
        record = await _over_ws(request, app, event_id, envelope, body)
    else:
        record = await _over_webhook(app, envelope, body)
    record.update(eventId=event_id, seconds=time.monotonic() - started, at=time.time())
    app.card_actions.append(record)
    return web.json_response(record, status=201)


@routes.get("/_sim/apps/{app_id}/card-actions")
async def list_card_actions(request: web.Request) -> web.Response:
    return web.json_response(known_app(request).card_actions)


async def _over_ws(request: web.Request, app: App, event_id: str, envelope: dict[str, Any],
                   body: CardActionPush) -> dict[str, Any]:
    state = request.app[STATE_KEY]
    item = await _start(state, app, event_id, envelope, 1, wait_ack=True,
                        frame_type="card" if body.legacy_frame else "event")
    record: dict[str, Any] = {"via": "ws", "legacyFrame": body.legacy_frame}
    assert item.ack_waiter is not None
    try:
        ack = await asyncio.wait_for(item.ack_waiter, body.timeout)
    except TimeoutError:
        record.update(acked=False, code=None, response=None)
        return record
    record.update(acked=True, code=ack["code"], response=ack.get("data"))
    return record


async def _over_webhook(app: App, envelope: dict[str, Any],
                        body: CardActionPush) -> dict[str, Any]:
    record: dict[str, Any] = {"via": "webhook"}
    raw = json.dumps(envelope).encode()
    encrypt = bool(app.encrypt_key) if body.encrypt is None else body.encrypt
    if encrypt and app.encrypt_key:
        raw = json.dumps({"encrypt": crypto.encrypt(raw, app.encrypt_key)}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if app.encrypt_key:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        headers.update({
            "X-Lark-Request-Timestamp": timestamp,
            "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": crypto.sign(timestamp, nonce, app.encrypt_key, raw),
        })
    timeout = aiohttp.ClientTimeout(total=body.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(str(body.url), data=raw, headers=headers) as resp,
        ):
            text = await resp.text()
            record.update(status=resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        record.update(status=0, response=None, error=f"{type(exc).__name__}: {exc}")
        return record
    try:
        answer = json.loads(text) if text.strip() else None
    except ValueError:
        answer = text
    record["response"] = answer or None
    return record
