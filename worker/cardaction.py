"""A `card.action.trigger` callback as a handler sees it (a click on a card's button, a form).

The platform sends it as a v2 event (feishu-protocol.md 1.6; SDK
event/callback/model/p2_card_action_trigger.py) and waits about 3 s for the
answer: a toast and/or a card that replaces the clicked one.
"""

from dataclasses import dataclass, field
from typing import Any

import msgspec

CARD_ACTION_EVENT = "card.action.trigger"


class _Operator(msgspec.Struct):
    open_id: str = ""
    user_id: str | None = None


class _Action(msgspec.Struct):
    value: Any = None
    tag: str = ""
    option: str | None = None
    name: str | None = None
    form_value: dict[str, Any] | None = None
    input_value: str | None = None


class _Context(msgspec.Struct):
    open_message_id: str = ""
    open_chat_id: str = ""


class _Event(msgspec.Struct):
    operator: _Operator = msgspec.field(default_factory=_Operator)
    action: _Action = msgspec.field(default_factory=_Action)
    context: _Context = msgspec.field(default_factory=_Context)
    token: str = ""


class _Header(msgspec.Struct):
    event_id: str = ""
    event_type: str = ""


class _Envelope(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_Header)
    event: _Event = msgspec.field(default_factory=_Event)


class _Peek(msgspec.Struct):
    header: _Header | None = None


_decoder = msgspec.json.Decoder(_Envelope)
_peek = msgspec.json.Decoder(_Peek)


@dataclass(frozen=True)
class CardAction:
    """What a python handler receives for a card click; `raw` is the v2 envelope's bytes."""

    event_id: str
    open_id: str
    message_id: str
    chat_id: str
    tag: str
    value: Any
    form_value: dict[str, Any] = field(default_factory=dict)
    input_value: str | None = None
    option: str | None = None
    raw: bytes = b""
    event_type: str = CARD_ACTION_EVENT


def is_card_action(payload: bytes) -> bool:
    """Whether a payload is a card.action.trigger event (cheap: decodes the header only)."""
    if b"card.action.trigger" not in payload:
        return False
    try:
        header = _peek.decode(payload).header
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return header is not None and header.event_type == CARD_ACTION_EVENT


def parse_card_action(payload: bytes) -> CardAction:
    """Raises ValueError when the payload is not a card action with an event id."""
    try:
        envelope = _decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"undecodable card action: {exc}") from None
    if envelope.header.event_type != CARD_ACTION_EVENT or not envelope.header.event_id:
        raise ValueError("not a card.action.trigger event with an event id")
    event = envelope.event
    return CardAction(
        event_id=envelope.header.event_id,
        open_id=event.operator.open_id,
        message_id=event.context.open_message_id,
        chat_id=event.context.open_chat_id,
        tag=event.action.tag,
        value=event.action.value,
        form_value=event.action.form_value or {},
        input_value=event.action.input_value,
        option=event.action.option,
        raw=payload,
    )
