"""The Open APIs a bot needs: tenant/app access tokens and IM reply/create."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from aiohttp import web

from shared.ratelimits import RESET_HEADER
from simulator import limits
from simulator.state import STATE_KEY, App, SimState

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

INVALID_APP = 10014
NEED_TOKEN = 99991661
INVALID_TOKEN = 99991663
BAD_REQUEST = 99992402
CONTENT_TOO_LONG = 230025
BODY_LIMITS = {"text": 150 * 1024, "post": 30 * 1024, "interactive": 30 * 1024}
"""Request body limits per msg_type (create/reply docs: text 150 KB, post and card 30 KB)."""


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg, "data": {}}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    """The SDK posts token requests without a Content-Type, so never insist on one."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _token(request: web.Request, kind: str) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _body(request)
    if body is None:
        return _error(BAD_REQUEST, "invalid request body")
    app = state.apps.get(str(body.get("app_id", "")))
    if app is not None and kind == "tenant":
        app.token_requests += 1
    if app is None or body.get("app_secret") != app.app_secret:
        return web.json_response({"code": INVALID_APP, "msg": "app secret invalid"})
    value, expire = state.issue_token(app, kind)
    key = "tenant_access_token" if kind == "tenant" else "app_access_token"
    answer: dict[str, Any] = {"code": 0, "msg": "ok", key: value, "expire": expire}
    if kind == "app":
        answer["tenant_access_token"] = state.issue_token(app, "tenant")[0]
    return web.json_response(answer)


@routes.post("/open-apis/auth/v3/tenant_access_token/internal")
async def tenant_token(request: web.Request) -> web.Response:
    return await _token(request, "tenant")


@routes.post("/open-apis/auth/v3/app_access_token/internal")
async def app_token(request: web.Request) -> web.Response:
    return await _token(request, "app")


def _authorize(state: SimState, request: web.Request) -> App | web.Response:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        return _error(NEED_TOKEN, "Need a token. Please make a request with token attached.")
    app = state.app_for_token(auth[7:].strip())
    if app is None:
        return _error(
            INVALID_TOKEN,
            "Invalid access token for authorization. Please make a request with token attached.",
        )
    return app


@routes.get("/open-apis/bot/v3/info")
async def bot_info(request: web.Request) -> web.Response:
    """The bot's own identity, as the platform answers it (`bot`, not `data`)."""
    app = _authorize(request.app[STATE_KEY], request)
    if isinstance(app, web.Response):
        return app
    app.bot_info_calls += 1
    bot = {"activate_status": 2, "app_name": app.bot_name or app.app_id, "avatar_url": "",
           "ip_white_list": [], "open_id": app.bot_open_id}
    return web.json_response({"code": 0, "msg": "ok", "bot": bot})


def _injected_fault(app: App) -> web.Response | None:
    fault = app.im_errors
    if fault is None:
        return None
    fault.count -= 1
    if fault.count <= 0:
        app.im_errors = None
    response = _error(fault.code, fault.msg, fault.status)
    if fault.reset is not None:
        response.headers[RESET_HEADER] = str(fault.reset)
    return response


async def _send(request: web.Request, kind: str) -> web.Response:
    state = request.app[STATE_KEY]
    app = _authorize(state, request)
    if isinstance(app, web.Response):
        return app
    injected = _injected_fault(app)
    if injected is not None:
        return injected
    raw = await request.read()
    body = await _body(request)
    if body is None:
        return _error(BAD_REQUEST, "invalid request body")
    limit = BODY_LIMITS.get(str(body.get("msg_type")))
    if limit is not None and len(raw) > limit:
        return _error(CONTENT_TOO_LONG, f"The message content is too long: {len(raw)} bytes "
                      f"over the {limit} byte limit of {body.get('msg_type')} messages")
    reply_to = request.match_info.get("message_id") if kind == "reply" else None
    receive_id_type = request.query.get("receive_id_type") if kind == "create" else None
    if kind == "create" and (not receive_id_type or not body.get("receive_id")):
        return _error(BAD_REQUEST, "receive_id_type and receive_id are required")
    msg_type, content = body.get("msg_type"), body.get("content")
    if not isinstance(msg_type, str) or not isinstance(content, str):
        return _error(BAD_REQUEST, "msg_type and content are required strings")
    uid = body.get("uuid") or None
    earlier = app.sent_by_uuid.get(uid) if uid else None
    if earlier is not None and time.time() - earlier["at"] >= app.uuid_ttl:
        earlier = None  # the platform keeps a uuid for one hour only
    media = _media_error(app, msg_type, content)
    if media is not None:
        return media
    chat_id = app.chats.get(reply_to or "", "") if kind == "reply" else str(body["receive_id"])
    if not earlier:
        refused = limits.admit(app, chat_id, kind)
        if refused is not None:
            return refused
    record = {
        "kind": kind,
        "replyTo": reply_to,
        "receiveId": body.get("receive_id"),
        "receiveIdType": receive_id_type,
        "msgType": msg_type,
        "content": content,
        "text": _text(msg_type, content),
        "uuid": uid,
        "replyInThread": bool(body.get("reply_in_thread", False)),
        "threadId": _thread_of(app, reply_to, bool(body.get("reply_in_thread", False))),
        "messageId": earlier["messageId"] if earlier else "om_" + secrets.token_hex(16),
        "at": time.time(),
    }
    if earlier:
        record["duplicate"] = True
    app.sent.append(record)
    if uid and not earlier:
        app.sent_by_uuid[uid] = record
    if not earlier and chat_id:
        app.chats[record["messageId"]] = chat_id
    shown = earlier or record
    return web.json_response({"code": 0, "msg": "success", "data": _message(app, shown)})


def _thread_of(app: App, reply_to: str | None, in_thread: bool) -> str:
    """A reply to a message in a thread stays in it; `reply_in_thread` starts one otherwise."""
    if not reply_to:
        return ""
    thread = app.threads.get(reply_to, "")
    if not thread and in_thread:
        thread = app.threads[reply_to] = "omt_" + secrets.token_hex(8)
    return thread
def _media_error(app: App, msg_type: str, content: str) -> web.Response | None:
    """An image or file message must name a key this app uploaded (simulator/media.py)."""
    if msg_type not in ("image", "file"):
        return None
    try:
        key = json.loads(content).get(f"{msg_type}_key")
    except (ValueError, AttributeError):
        key = None
    if not key or key not in app.uploads:
        return _error(BAD_REQUEST, f"{msg_type}_key is not an uploaded {msg_type}")
    return None


def _text(msg_type: str, content: str) -> str | None:
    if msg_type != "text":
        return None
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    text = parsed.get("text") if isinstance(parsed, dict) else None
    return text if isinstance(text, str) else None


def _message(app: App, record: dict[str, Any]) -> dict[str, Any]:
    created = str(int(record["at"] * 1000))
    parent = record["replyTo"] or ""
    if record["receiveIdType"] == "chat_id":
        chat_id = record["receiveId"]
    else:
        chat_id = app.chats.get(parent, "")
    return {
        "message_id": record["messageId"],
        "root_id": parent,
        "parent_id": parent,
        "thread_id": record["threadId"],
        "msg_type": record["msgType"],
        "create_time": created,
        "update_time": created,
        "deleted": False,
        "updated": False,
        "chat_id": chat_id,
        "sender": {
            "id": app.app_id,
            "id_type": "app_id",
            "sender_type": "app",
            "tenant_key": app.tenant_key,
        },
        "body": {"content": record["content"]},
        "mentions": [],
        "upper_message_id": "",
    }


@routes.post("/open-apis/im/v1/messages/{message_id}/reply")
async def reply(request: web.Request) -> web.Response:
    return await _send(request, "reply")


@routes.post("/open-apis/im/v1/messages")
async def create(request: web.Request) -> web.Response:
    return await _send(request, "create")
