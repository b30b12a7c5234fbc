"""Sending through a bot, and its dead letters (events its handler gave up on)."""

import asyncio

from aiohttp import web

from api.auth import owned_bot
from api.body import decode_body, json_response
from api.errors import ApiError
from api.keys import FLEET, PATHS
from api.routing import Route
from api.schemas import (
    DeadLetterList,
    DeadLetterView,
    MessageSent,
    RetryQueued,
    SendMessage,
)
from shared.clocks import iso
from shared.idempotency import new_api_uuid
from shared.messages import NO_WORKER
from shared.results import ResultError, parse_result
from worker.spool import read_dead_letters

MAX_DEAD_LETTERS = 1000


def _failure(incarnation: int, error: str | None, code: int | None = None,
             timed_out: bool = False, retry_hint: str = "") -> ApiError:
    detail = error or "failed"
    if code is not None:
        detail = f"{detail} (platform code {code})"
    if timed_out:
        return ApiError(504, f"{detail}; the outcome is unknown{retry_hint}", "outcome_unknown")
    if incarnation == NO_WORKER:
        return ApiError(409, f"{detail}; connect the bot first", "not_running")
    return ApiError(502, detail, "send_failed")


async def send_message(request: web.Request) -> web.Response:
    """Send text, post, card, cardTemplate, image, file, or `messages` (in order)."""
    bot_id = owned_bot(request).config.id
    body = await decode_body(request, SendMessage)
    shape = body.result()
    if not shape:
        raise ApiError(400, "one of text, post, card, cardTemplate, image, file, messages"
                       " is required - at `$`")
    try:
        replies = parse_result(shape)
    except ResultError as exc:
        raise ApiError(400, str(exc)) from None
    if not replies:
        raise ApiError(400, "no message to send - at `$.messages`")
    uuid = body.uuid or new_api_uuid()
    result = await request.app[FLEET].send_message(
        bot_id, body.receive_id, body.receive_id_type, replies, uuid
    )
    if not result.ok:
        raise _failure(result.incarnation, result.error, result.code, result.timed_out,
                       f": retry with uuid {uuid}, never sent twice")
    ids = result.message_ids or ([result.message_id] if result.message_id else [])
    return json_response(MessageSent(bot_id=bot_id, message_id=result.message_id,
                                     message_ids=ids, uuid=uuid))


async def dead_letters(request: web.Request) -> web.Response:
    """Read from the bot's spool file (read-only), so it works while the bot is stopped."""
    bot_id = owned_bot(request).config.id
    spool = request.app[PATHS].spool(bot_id)
    letters = await asyncio.to_thread(read_dead_letters, spool, MAX_DEAD_LETTERS)
    views = [
        DeadLetterView(
            event_id=d.event_id, chat_id=d.chat_id, event_type=d.event_type,
            attempts=d.attempts, last_error=d.last_error,
            created_at=iso(d.created_at), updated_at=iso(d.updated_at),
        )
        for d in letters
    ]
    return json_response(DeadLetterList(bot_id=bot_id, dead_letters=views))


async def retry_dead_letter(request: web.Request) -> web.Response:
    bot_id = owned_bot(request).config.id
    event_id = request.match_info["eventId"]
    result = await request.app[FLEET].retry_dead_letter(bot_id, event_id)
    if not result.ok:
        if result.incarnation == NO_WORKER:
            raise _failure(result.incarnation, result.error, timed_out=result.timed_out)
        raise ApiError(404, result.error or f"event {event_id} is not a dead letter")
    return json_response(RetryQueued(bot_id=bot_id, event_id=event_id))


ROUTES = [
    Route("POST", "/api/feishu/bots/{id}/messages", send_message,
          "Send messages: text, post, card, cardTemplate, image, file, or messages in order",
          SendMessage, MessageSent, (200, 400, 401, 404, 409, 413, 502, 504)),
    Route("GET", "/api/feishu/bots/{id}/dead-letters", dead_letters,
          "Events the handler gave up on (newest first)",
          None, DeadLetterList, (200, 401, 404)),
    Route("POST", "/api/feishu/bots/{id}/dead-letters/{eventId}/retry", retry_dead_letter,
          "Queue a dead letter again", None, RetryQueued, (200, 401, 404, 409, 504)),
]
