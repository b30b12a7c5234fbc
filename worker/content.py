"""Turn a spooled event payload into what a handler sees (docs/event-path.md).

Every event type becomes a `Message`: for `im.message.receive_v1` with its
text, for any other type (bot added, recalled, reactions, v1 events ...)
with `text` None and `message_id` "", so `forward` and `python` handlers get
every event while `echo` and `openai` answer messages only. `raw` is the
platform's v2 envelope; a v1 event (`{"uuid", "event": {"type"}}`) is wrapped
into one with `"schema": "1.0"` (worker/envelope.py).

Who is "the bot" in a mention is decided by open_id: the bot's own open_id
comes from `GET /open-apis/bot/v3/info` (worker/identity.py), never from a
name or the order of the mentions. `@_all` (@everyone) addresses the bot only
when its `answerAtAll` option is on. A group message that does not address
the bot is not for it (with the "read all group messages" scope the platform
sends every one). Placeholders (`@_user_1`) are replaced as whole tokens, so
`@_user_1` never eats the front of `@_user_10`. Messages sent by an app
(`sender_type: "app"`) are never the bot's own to answer, and other apps'
only with `answerBots` (feishu receive-event doc: `sender.sender_type`).
"""

import re
from dataclasses import dataclass, field

import msgspec

from worker.envelope import header_of, to_v2

MESSAGE_EVENT = "im.message.receive_v1"
AT_ALL_KEY = "@_all"
MAX_CONTENT_BYTES = 150 * 1024
"""Feishu's own limit for a text message body; anything larger is refused."""


class ContentError(Exception):
    """The event cannot be understood; retrying would not help (dead letter)."""


class IdentityNeeded(Exception):
    """Deciding needs the bot's own open_id, which is not known yet: fetch it, then retry."""


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
    root_id: str = ""
    parent_id: str = ""
    thread_id: str = ""


class _SenderId(msgspec.Struct):
    open_id: str = ""


class _Sender(msgspec.Struct):
    sender_id: _SenderId = msgspec.field(default_factory=_SenderId)
    sender_type: str = ""


class _Event(msgspec.Struct):
    message: _Message | None = None
    sender: _Sender = msgspec.field(default_factory=_Sender)


class _Envelope(msgspec.Struct):
    event: _Event = msgspec.field(default_factory=_Event)


_decoder = msgspec.json.Decoder(_Envelope)
_SPACES = re.compile(r"[ \t]{2,}")
_AT_ALL_TAG = re.compile(
    r"<at\s+(?:user_id|id)\s*=\s*[\"']?all[\"']?\s*(?:/>|>(.*?)</at>)", re.IGNORECASE | re.DOTALL
)


def neutralise_at_all(text: str) -> str:
    """Turn `<at user_id="all">...</at>` (@everyone in a text message, im-v1 create doc,
    text content) into plain text, so text the bot only reflects (echo, a model's
    answer) can never notify a whole group by accident."""
    return _AT_ALL_TAG.sub(lambda m: "@" + (m[1] or "all"), text)


@dataclass(frozen=True)
class Addressee:
    """Who the bot is and what it answers: its open_id (None until known) and options."""

    open_id: str | None = None
    answer_at_all: bool = False
    answer_bots: bool = False


@dataclass(frozen=True)
class Message:
    """What a handler receives. `text` is None for types other than text and post, and
    for events that are not messages (`event_type` says which; `message_id` is "")."""

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
    """The event as the platform's v2 envelope (JSON), as forward handlers receive it."""
    event_type: str = MESSAGE_EVENT
    sender_type: str = "user"
    root_id: str = ""
    parent_id: str = ""
    thread_id: str = ""

    @property
    def is_message(self) -> bool:
        return self.event_type == MESSAGE_EVENT

    @property
    def conversation(self) -> str:
        """Whose history the message belongs to: its thread (topic groups), else its chat."""
        return self.thread_id or self.chat_id

    def envelope(self) -> dict:
        """The v2 envelope as a dict: `{"schema", "header": {...}, "event": {...}}`."""
        return msgspec.json.decode(self.raw)


@dataclass(frozen=True)
class NotForBot:
    """The event needs no handling (not addressed to the bot, or sent by an app)."""

    reason: str


def parse_event(payload: bytes, addressee: Addressee | None = None) -> Message | NotForBot:
    """Parse a spooled payload.

    Raises ContentError when it is undecodable or oversized, IdentityNeeded
    when the decision needs `addressee.open_id` and it is None.
    """
    addressee = addressee or Addressee()
    try:
        envelope, raw = to_v2(payload)
    except ValueError as exc:
        raise ContentError(f"undecodable event: {exc}") from None
    event_id, event_type = header_of(envelope)
    if event_type != MESSAGE_EVENT:
        return _other_event(event_id, event_type, envelope, raw)
    try:
        parsed = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ContentError(f"undecodable event: {exc}") from None
    msg = parsed.event.message
    if msg is None or not msg.message_id:
        raise ContentError("message event without a message")
    size = len(msg.content.encode())
    if size > MAX_CONTENT_BYTES:
        raise ContentError(f"content of {size} bytes is over the {MAX_CONTENT_BYTES} byte limit")
    sender = parsed.event.sender
    refusal = _sender_refusal(sender, addressee)
    if refusal is not None:
        return NotForBot(refusal)
    mentions = msg.mentions or []
    addressed = _addressing(msg.chat_type, mentions, addressee)
    if isinstance(addressed, NotForBot):
        return addressed
    text = None
    if msg.message_type in ("text", "post"):
        text = _resolve_mentions(_text_of(msg.message_type, msg.content), mentions, addressed)
    return Message(
        event_id=event_id,
        message_id=msg.message_id,
        chat_id=msg.chat_id,
        chat_type=msg.chat_type,
        open_id=sender.sender_id.open_id,
        message_type=msg.message_type,
        text=text,
        content=msg.content,
        mentions=[m.name for m in mentions],
        raw=raw,
        sender_type=sender.sender_type or "user",
        root_id=msg.root_id,
        parent_id=msg.parent_id,
        thread_id=msg.thread_id,
    )


def _other_event(event_id: str, event_type: str, envelope: dict, raw: bytes) -> Message:
    """A non-message event: chat and operator when its body names them (bot added, p2p
    chat entered, recalled ...), so an answer can go to the chat."""
    event = envelope.get("event")
    event = event if isinstance(event, dict) else {}
    chat_id = event.get("chat_id") if isinstance(event.get("chat_id"), str) else ""
    operator = event.get("operator_id")
    open_id = operator.get("open_id", "") if isinstance(operator, dict) else ""
    return Message(event_id=event_id, message_id="", chat_id=chat_id or "", chat_type="",
                   open_id=open_id if isinstance(open_id, str) else "", message_type="",
                   text=None, content="", raw=raw, event_type=event_type or "?")


def _sender_refusal(sender: _Sender, addressee: Addressee) -> str | None:
    if sender.sender_type != "app":
        return None
    if not addressee.answer_bots:
        return "message sent by an app (answerBots is off)"
    if addressee.open_id is None:
        raise IdentityNeeded("is this app message the bot's own?")
    sender_open_id = sender.sender_id.open_id
    if not sender_open_id or sender_open_id == addressee.open_id:
        return "message sent by this bot"
    return None


def _addressing(
    chat_type: str, mentions: list[_Mention], addressee: Addressee
) -> set[str] | NotForBot:
    """The placeholder keys that address the bot (stripped from the text), or NotForBot."""
    at_all = any(m.key == AT_ALL_KEY for m in mentions)
    named = [m for m in mentions if m.key and m.key != AT_ALL_KEY]
    own: set[str] = set()
    if named:
        if addressee.open_id is None:
            raise IdentityNeeded("which mention is the bot?")
        own = {m.key for m in named if m.id.open_id and m.id.open_id == addressee.open_id}
    if at_all and addressee.answer_at_all and not own:
        own.add(AT_ALL_KEY)
    if chat_type == "group" and not own:
        if at_all and not named:
            return NotForBot("@all announcement (answerAtAll is off)")
        if mentions:
            return NotForBot("group message that mentions others, not the bot")
        return NotForBot("group message without a mention")
    return own


def _resolve_mentions(text: str, mentions: list[_Mention], own: set[str]) -> str:
    """Replace each placeholder as a whole token: the bot's own go, others become @name."""
    names = {m.key: m.name for m in mentions if m.key}
    if names:
        keys = sorted(names, key=len, reverse=True)
        pattern = re.compile("(" + "|".join(map(re.escape, keys)) + r")(?![0-9A-Za-z_])")
        text = pattern.sub(lambda m: "" if m[1] in own else f"@{names[m[1]]}", text)
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
    send format wraps that in a locale (`{"zh_cn": {...}}`), and some senders in
    `{"post": {"zh_cn": {...}}}` too (mf-yang/openclaw-cn #37): both unwrapped.
    """
    for _ in range(2):
        if "content" in data:
            break
        nested = [v for v in data.values() if isinstance(v, dict)]
        data = next((v for v in nested if "content" in v), nested[0] if nested else {})
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
