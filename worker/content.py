"""Turn a spooled `im.message.receive_v1` payload into the message a handler sees.

Who is "the bot" in a mention: the event does not say which mention is the
bot itself, and the bot's own open_id is not in its config. A bot normally
only receives a group message when it is @mentioned (feishu-protocol.md,
section 5), so: in a group, any mention addresses the bot; the bot's mention
is the one whose name equals the bot's name, else the first one. That
placeholder is stripped; other placeholders become `@name`. A group message
without any mention is not for the bot.
"""

import re
from dataclasses import dataclass, field

import msgspec

MESSAGE_EVENT = "im.message.receive_v1"
MAX_CONTENT_BYTES = 150 * 1024
"""Feishu's own limit for a text message body; anything larger is refused."""


class ContentError(Exception):
    """The event cannot be understood; retrying would not help (dead letter)."""


class _MentionId(msgspec.Struct):
    open_id: str = ""


class _Mention(msgspec.Struct):
    key: str = ""
    name: str = ""
    id: _MentionId = msgspec.field(default_factory=_MentionId)


class _Message(msgspec.Struct):
    message_id: str = ""
    chat_id: str = ""
    chat_type: str = ""
    message_type: str = ""
    content: str = ""
    mentions: list[_Mention] | None = None


class _SenderId(msgspec.Struct):
    open_id: str = ""


class _Sender(msgspec.Struct):
    sender_id: _SenderId = msgspec.field(default_factory=_SenderId)
    sender_type: str = ""


class _Event(msgspec.Struct):
    message: _Message | None = None
    sender: _Sender = msgspec.field(default_factory=_Sender)


class _Header(msgspec.Struct):
    event_id: str = ""
    event_type: str = ""


class _Envelope(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_Header)
    event: _Event = msgspec.field(default_factory=_Event)


_decoder = msgspec.json.Decoder(_Envelope)
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class Message:
    """What a handler receives. `text` is None for types other than text and post."""

    event_id: str
    message_id: str
    chat_id: str
    chat_type: str
    open_id: str
    message_type: str
    text: str | None
    content: str
    mentions: list[str] = field(default_factory=list)
    raw: bytes = b""


@dataclass(frozen=True)
class NotForBot:
    """The event needs no handling (not a message, or a group message without a mention)."""

    reason: str


def parse_event(payload: bytes, bot_name: str = "") -> Message | NotForBot:
    """Parse a spooled payload; raise ContentError when it is undecodable or oversized."""
    try:
        envelope = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ContentError(f"undecodable event: {exc}") from None
    if envelope.header.event_type != MESSAGE_EVENT:
        return NotForBot(f"event type {envelope.header.event_type or '?'}")
    msg = envelope.event.message
    if msg is None or not msg.message_id:
        raise ContentError("message event without a message")
    if len(msg.content.encode()) > MAX_CONTENT_BYTES:
        raise ContentError(f"content of {len(msg.content)} chars is over the limit")
    mentions = msg.mentions or []
    bot_key = _bot_mention(mentions, bot_name, msg.chat_type == "group")
    if msg.chat_type == "group" and not mentions:
        return NotForBot("group message without a mention")
    text = None
    if msg.message_type in ("text", "post"):
        raw_text = _text_of(msg.message_type, msg.content)
        text = _resolve_mentions(raw_text, mentions, bot_key)
    return Message(
        event_id=envelope.header.event_id,
        message_id=msg.message_id,
        chat_id=msg.chat_id,
        chat_type=msg.chat_type,
        open_id=envelope.event.sender.sender_id.open_id,
        message_type=msg.message_type,
        text=text,
        content=msg.content,
        mentions=[m.name for m in mentions],
        raw=payload,
    )


def _bot_mention(mentions: list[_Mention], bot_name: str, in_group: bool) -> str | None:
    for mention in mentions:
        if bot_name and mention.name == bot_name:
            return mention.key
    if in_group and mentions:
        return mentions[0].key
    return None


def _resolve_mentions(text: str, mentions: list[_Mention], bot_key: str | None) -> str:
    for mention in mentions:
        if not mention.key:
            continue
        replacement = "" if mention.key == bot_key else f"@{mention.name}"
        text = text.replace(mention.key, replacement)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def _text_of(message_type: str, content: str) -> str:
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        raise ContentError("message content is not JSON") from None
    if not isinstance(data, dict):
        raise ContentError("message content is not a JSON object")
    if message_type == "text":
        text = data.get("text", "")
        if not isinstance(text, str):
            raise ContentError("text content without a string text")
        return text
    return flatten_post(data)


def flatten_post(data: dict) -> str:
    """Flatten `post` rich text to plain text: title, then one line per paragraph.

    The receive event sends `{"title", "content": [[element, ...], ...]}`; the
    send format wraps that in a locale (`{"zh_cn": {...}}`), accepted too.
    """
    if "content" not in data:
        data = next((v for v in data.values() if isinstance(v, dict) and "content" in v), {})
    lines = [data["title"]] if isinstance(data.get("title"), str) and data["title"] else []
    for paragraph in data.get("content") or []:
        if isinstance(paragraph, list):
            line = "".join(_element_text(e) for e in paragraph if isinstance(e, dict))
            if line:
                lines.append(line)
    return "\n".join(lines)


def _element_text(element: dict) -> str:
    tag = element.get("tag")
    if tag in ("text", "a", "code_block", "md"):
        return str(element.get("text", ""))
    if tag == "at":
        user = str(element.get("user_id", ""))
        return user if user.startswith("@_") else f"@{element.get('user_name', user)}"
    if tag == "emotion":
        return f"[{element.get('emoji_type', '')}]"
    return ""
