"""Deliver one handler answer: where it goes, in how many parts, and what a refusal means.

- A message is answered with the reply API, in its thread when it is in one
  (`reply_in_thread`, im-v1 reply doc); an event that is not a message
  (bot added to a chat, p2p chat entered, ...) is answered with a new message
  in its chat, if it names one.
- Parts: an answer over the size limit is split (worker/split.py); each part
  has its own uuid from the message being answered and its position
  (shared/idempotency.py), so a retry resends only what the platform lacks.
- Refusals (im-v1 create/reply error tables):
  - the message to answer is gone (TARGET_GONE_CODES: withdrawn 230011, not
    found 231003, deleted 230110): with `replyFallback: "send"` the answer
    goes to the chat as a new message; otherwise it is dropped, logged and
    counted (`replies_dropped`). Retrying cannot bring the message back.
  - TERMINAL_CODES (bot not in the chat, no permission, bad content, ...):
    permanent, the event is a dead letter at once and the chat moves on.
  - 230025 (too long although under our limit): the part is split again at
    half the size, down to MIN_SPLIT_BYTES, then it is terminal too.
  - anything else is retried by the consumer (rate limits wait longer).
"""

import logging
from dataclasses import dataclass

from shared.botconfig import BotOptions
from shared.idempotency import send_uuid
from shared.results import Reply, Text
from worker.content import Message
from worker.counters import Counters
from worker.errors import EventError
from worker.replies import CallResult, Messenger, Target
from worker.split import TEXT_BODY_LIMIT, split_reply, split_text

log = logging.getLogger(__name__)

TARGET_GONE_CODES = frozenset({230011, 231003, 230110})
TERMINAL_CODES = frozenset({
    230001,  # invalid request parameter (bad content, bad receive id)
    230002,  # the bot is not in the chat
    230006,  # the app's bot ability is not enabled
    230013,  # the user is outside the bot's availability
    230015,  # p2p chat with a user of another tenant
    230017,  # the bot is not allowed to speak in this chat
    230027,  # lacks a necessary permission
    230028,  # refused by data loss prevention
    230035,  # sending is not permitted in this chat
    230038,  # cross-tenant sending is not allowed
    230099,  # the card content could not be created
})
TOO_LONG = 230025
MIN_SPLIT_BYTES = 4 * 1024


def target_of(message: Message) -> Target | None:
    """Where the answer to `message` goes: a reply (in its thread when it is in one), a new
    message in the chat for an event that is not a message, or nowhere (None)."""
    if message.message_id:
        return Target.reply(message.message_id, message.chat_id, bool(message.thread_id))
    if message.chat_id:
        return Target.new(message.chat_id, "chat_id")
    return None


@dataclass
class _Part:
    position: int
    key: str
    """The part's place within its reply: "0", "1", ... and "1.0", "1.1" once re-split."""
    reply: Reply
    limit: int = TEXT_BODY_LIMIT


class Outbox:
    """Sends the answers of one bot, applying its options."""

    def __init__(self, messenger: Messenger, options: BotOptions, counters: Counters) -> None:
        self._messenger = messenger
        self._options = options
        self._counters = counters

    async def deliver(self, message: Message, replies: list[Reply]) -> list[str]:
        """Send the replies to `message` in order: the ids of the messages sent ([] when
        dropped). Raises EventError to have the event retried or dead-lettered."""
        target = target_of(message)
        if target is None:
            self._drop(message, f"a {message.event_type} event names no chat to answer in")
            return []
        trigger = message.message_id or message.event_id
        queue = [_Part(position, str(i), part) for position, reply in enumerate(replies)
                 for i, part in enumerate(split_reply(reply))]
        if len(queue) > len(replies):
            log.info("event %s: answer split into %d parts for the size limits",
                     message.event_id, len(queue))
        sent: list[str] = []
        while queue:
            part = queue.pop(0)
            uuid = (send_uuid(trigger, part.position, int(part.key)) if part.key.isdigit()
                    else send_uuid(f"{trigger}#{part.position}/{part.key}"))
            result = await self._messenger.send_reply(target, part.reply, uuid)
            if result.code in TARGET_GONE_CODES and target.reply_to:
                if self._options.reply_fallback != "send" or not message.chat_id:
                    self._drop(message, f"the message to answer is gone (code {result.code})")
                    return sent
                log.info("event %s: the message to answer is gone (code %s): sending to the "
                         "chat instead", message.event_id, result.code)
                target = Target.new(message.chat_id, "chat_id")
                result = await self._messenger.send_reply(target, part.reply, uuid)
            if result.code == TOO_LONG:
                smaller = _smaller(part)
                if smaller:
                    queue[:0] = smaller
                    continue
            if not result.ok:
                raise _failure(result)
            sent.append(result.message_id or "")
        return sent

    def _drop(self, message: Message, why: str) -> None:
        self._counters.counts.replies_dropped += 1
        log.warning("event %s: answer dropped: %s", message.event_id, why)


def _smaller(part: _Part) -> list[_Part]:
    """A refused part cut again at half the size, or [] when it cannot be cut further."""
    limit = part.limit // 2
    if not isinstance(part.reply, Text) or limit < MIN_SPLIT_BYTES:
        return []
    pieces = split_text(part.reply.text, limit)
    if len(pieces) < 2:
        return []
    return [_Part(part.position, f"{part.key}.{i}", Text(text=p), limit)
            for i, p in enumerate(pieces)]


def _failure(result: CallResult) -> EventError:
    text = f"send failed: code {result.code}: {result.error}"
    permanent = result.code in TERMINAL_CODES or result.code == TOO_LONG
    return EventError(text, permanent=permanent, rate_limited=result.rate_limited)
