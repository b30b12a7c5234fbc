"""Webhook (HTTP push) mode: the simulator POSTs to a bot's URL the way Feishu does."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

from simulator import crypto
from simulator.control import decode, known_app
from simulator.events import MessageSpec, build_event, encode

routes = web.RouteTableDef()


class WebhookPush(MessageSpec, forbid_unknown_fields=True, kw_only=True):
    url: str
    challenge: bool = False
    encrypt: bool | None = None
    tamper: bool = False
    signed: bool | None = None
    """Send the X-Lark-* signature headers; default: events yes (when the app has an
    encryptKey), URL-verification challenges no, as the platform sends them."""
    timestamp: int | None = None
    """X-Lark-Request-Timestamp to sign with (epoch seconds; default now): replay tests."""
    timeout: float = 10.0


@routes.post("/_sim/apps/{app_id}/webhook")
async def push(request: web.Request) -> web.Response:
    """encrypt defaults to on when the app has an encryptKey; signature headers are sent
    with events when it has one, never with a challenge unless `signed` (tamper corrupts
    them); the target's answer is handed back."""
    app = known_app(request)
    body = await decode(request, WebhookPush)
    if not body.url.startswith(("http://", "https://")):
        return web.json_response({"error": "url must be http(s) - at `$.url`"}, status=400)
    encrypt = bool(app.encrypt_key) if body.encrypt is None else body.encrypt
    if encrypt and not app.encrypt_key:
        return web.json_response({"error": "app has no encryptKey - at `$.encrypt`"}, status=400)
    result: dict[str, Any] = {}
    if body.challenge:
        challenge = secrets.token_urlsafe(12)
        payload: dict[str, Any] = {
            "challenge": challenge,
            "token": app.verification_token,
            "type": "url_verification",
        }
        result["challenge"] = challenge
    else:
        event_id, message_id, payload = build_event(app, body)
        result.update(eventId=event_id, messageId=message_id)
    raw = encode(payload)
    if encrypt:
        raw = json.dumps({"encrypt": crypto.encrypt(raw, app.encrypt_key)}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    signed = (not body.challenge) if body.signed is None else body.signed
    if app.encrypt_key and signed:
        sent_at = int(time.time()) if body.timestamp is None else body.timestamp
        timestamp, nonce = str(sent_at), secrets.token_hex(8)
        signature = crypto.sign(timestamp, nonce, app.encrypt_key, raw)
        if body.tamper:
            signature = signature[::-1]
        headers.update(
            {
                "X-Lark-Request-Timestamp": timestamp,
                "X-Lark-Request-Nonce": nonce,
                "X-Lark-Signature": signature,
            }
        )
    timeout = aiohttp.ClientTimeout(total=body.timeout)
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(body.url, data=raw, headers=headers) as resp,
        ):
            result.update(status=resp.status, body=await resp.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.update(status=0, body="", error=f"{type(exc).__name__}: {exc}")
    # What the platform waits for: connect, send, and the whole answer (seconds).
    result["seconds"] = time.monotonic() - started
    return web.json_response(result)
