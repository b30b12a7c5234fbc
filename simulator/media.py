"""Open APIs beyond sending: image and file uploads, card updates (PATCH), reactions."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from simulator import limits
from simulator.openapi import BAD_REQUEST, _authorize, _body, _error
from simulator.state import STATE_KEY, App

routes = web.RouteTableDef()

MESSAGE_NOT_FOUND = 230011
NOT_A_CARD = 230001
"""Only an interactive message the bot sent can be updated (im-v1/message/patch)."""


async def _app(request: web.Request) -> App | web.Response:
    return _authorize(request.app[STATE_KEY], request)


async def _upload(request: web.Request, kind: str) -> web.Response:
    app = await _app(request)
    if isinstance(app, web.Response):
        return app
    form = await _multipart(request)
    data = form.get(kind)
    if data is None:
        return _error(BAD_REQUEST, f"{kind} is required (multipart)")
    type_field = "image_type" if kind == "image" else "file_type"
    try:
        kind_of = form.get(type_field, b"").decode()
        name = form.get("file_name", b"").decode() if kind == "file" else ""
    except UnicodeDecodeError:
        return _error(BAD_REQUEST, f"{type_field} and file_name must be UTF-8 text")
    prefix = "img_v3_" if kind == "image" else "file_v3_"
    key = prefix + secrets.token_hex(12)
    app.uploads[key] = {
        "key": key,
        "kind": kind,
        "size": len(data),
        "type": kind_of,
        "name": name,
        "head": data[:16].hex(),
        "at": time.time(),
    }
    return web.json_response({"code": 0, "msg": "success", "data": {f"{kind}_key": key}})


async def _multipart(request: web.Request) -> dict[str, bytes]:
    """Every part as bytes: the SDK sends the file without a filename, which aiohttp's
    `post()` would then try to decode as text."""
    parts: dict[str, bytes] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if part.name:
            parts[part.name] = await part.read()
    return parts


@routes.post("/open-apis/im/v1/images")
async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, "image")


@routes.post("/open-apis/im/v1/files")
async def upload_file(request: web.Request) -> web.Response:
    return await _upload(request, "file")


@routes.patch("/open-apis/im/v1/messages/{message_id}")
async def patch(request: web.Request) -> web.Response:
    """Replace a card's content; the sent record shows the latest content and counts updates."""
    app = await _app(request)
    if isinstance(app, web.Response):
        return app
    body = await _body(request)
    if body is None or not isinstance(body.get("content"), str):
        return _error(BAD_REQUEST, "content is required")
    message_id = request.match_info["message_id"]
    record = _sent_record(app, message_id)
    if record is None:
        return _error(MESSAGE_NOT_FOUND, "message not found")
    if record["msgType"] != "interactive":
        return _error(NOT_A_CARD, "only a card can be updated")
    refused = limits.admit(app, app.chats.get(message_id, ""), "update")
    if refused is not None:
        return refused
    now = time.time()
    record["content"] = body["content"]
    record["updates"] = record.get("updates", 0) + 1
    record["updatedAt"] = now
    app.updates.append({"messageId": message_id, "content": body["content"], "at": now})
    return web.json_response({"code": 0, "msg": "success", "data": {}})


def _sent_record(app: App, message_id: str) -> dict[str, Any] | None:
    for record in reversed(app.sent):
        if record["messageId"] == message_id and not record.get("duplicate"):
            return record
    return None


@routes.post("/open-apis/im/v1/messages/{message_id}/reactions")
async def add_reaction(request: web.Request) -> web.Response:
    app = await _app(request)
    if isinstance(app, web.Response):
        return app
    body = await _body(request) or {}
    emoji = (body.get("reaction_type") or {}).get("emoji_type")
    if not isinstance(emoji, str) or not emoji:
        return _error(BAD_REQUEST, "reaction_type.emoji_type is required")
    reaction_id = secrets.token_hex(16)
    app.reactions.append({"messageId": request.match_info["message_id"], "emojiType": emoji,
                          "reactionId": reaction_id, "at": time.time(), "removedAt": None})
    data = {"reaction_id": reaction_id, "reaction_type": {"emoji_type": emoji},
            "action_time": str(int(time.time() * 1000))}
    return web.json_response({"code": 0, "msg": "success", "data": data})


@routes.delete("/open-apis/im/v1/messages/{message_id}/reactions/{reaction_id}")
async def remove_reaction(request: web.Request) -> web.Response:
    app = await _app(request)
    if isinstance(app, web.Response):
        return app
    for reaction in app.reactions:
        if reaction["reactionId"] == request.match_info["reaction_id"]:
            reaction["removedAt"] = time.time()
            data = {"reaction_id": reaction["reactionId"],
                    "reaction_type": {"emoji_type": reaction["emojiType"]}}
            return web.json_response({"code": 0, "msg": "success", "data": data})
    return _error(BAD_REQUEST, "reaction not found")

