"""Handler results: the one answer shape of every handler kind (architecture.md "Handler results").

```
Result  = null | Reply | {"messages": [Reply, ...]}           (sent in order)
Reply   = "text" | {"text": "..."} | {"post": {...}} | {"card": {...}}
        | {"cardTemplate": {"id": "...", "variables": {...}}}
        | {"image": {"base64": "..."}} | {"file": {"base64": "...", "name": "..."}}
CardActionResult = {"toast": {"type": ..., "content": ...}?, "card": {...}?}
```

A `forward` target answers it as its JSON body, a `python` function returns
it (a plain string, a dict of that shape, or the structs below), `openai`
produces text or a streamed card; the API's send endpoint accepts the same.
`parse_result` turns any of those into a list of `Reply` structs, which are
tagged (`kind`) so they travel over ZeroMQ (msgpack) and sit in the spool
(JSON) unchanged. `to_content` gives the IM API's `msg_type` and `content`
for each (platform docs: im-v1/message/create "content" per message type;
cards: feishu-cards/card-json-v2-structure and send-message-card templates).
"""

import binascii
from base64 import b64decode
from typing import Annotated, Any, Literal

import msgspec


class ResultError(ValueError):
    """The value is not a handler result; the message names the field (`$.messages[1].card`)."""


class CardTemplate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A card built on the platform from a template id (the card builder's `AAq...` ids)."""

    id: Annotated[str, msgspec.Meta(min_length=1)]
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    version: str | None = None
    """The template version name; the latest published version when absent."""


class ImageSource(msgspec.Struct, forbid_unknown_fields=True):
    base64: Annotated[str, msgspec.Meta(min_length=1)]


class FileSource(msgspec.Struct, forbid_unknown_fields=True):
    base64: Annotated[str, msgspec.Meta(min_length=1)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=250)]


class _Reply(msgspec.Struct, tag_field="kind", rename="camel", kw_only=True):
    pass


class Text(_Reply, tag="text"):
    text: str


class Post(_Reply, tag="post"):
    """Rich text: `{"zh_cn": {"title": ..., "content": [[element, ...], ...]}}`."""

    post: dict[str, Any]


class Card(_Reply, tag="card"):
    """An interactive card's JSON (2.0: `{"schema": "2.0", "body": {...}}`, or 1.0)."""

    card: dict[str, Any]


class Template(_Reply, tag="cardTemplate"):
    card_template: CardTemplate


class Image(_Reply, tag="image"):
    """Uploaded first (im/v1/images), then sent by its image_key."""

    image: ImageSource


class File(_Reply, tag="file"):
    """Uploaded first (im/v1/files), then sent by its file_key."""

    file: FileSource


Reply = Text | Post | Card | Template | Image | File
REPLY_TYPES: dict[str, type] = {
    "text": Text, "post": Post, "card": Card, "cardTemplate": Template,
    "image": Image, "file": File,
}
"""The key that names a reply in a result object, and its struct."""

_FIELD_TYPES: dict[str, Any] = {
    "text": str, "post": dict[str, Any], "card": dict[str, Any],
    "cardTemplate": CardTemplate, "image": ImageSource, "file": FileSource,
}


class Toast(msgspec.Struct, forbid_unknown_fields=True):
    content: str
    type: Literal["info", "success", "warning", "error"] = "info"


class CardActionResult(msgspec.Struct, omit_defaults=True):
    """The answer to a `card.action.trigger` callback: a toast, an updated card, or both."""

    toast: Toast | None = None
    card: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The callback answer as the platform reads it (feishu-cards card-callback-communication):
        a card JSON is wrapped as `{"type": "raw", "data": card}`; a card already in that
        form (`type` raw or template, with `data`) is passed as is."""
        answer: dict[str, Any] = {}
        if self.toast is not None:
            answer["toast"] = msgspec.to_builtins(self.toast)
        if self.card is not None:
            card = self.card
            if card.get("type") in ("raw", "template") and "data" in card:
                answer["card"] = card
            else:
                answer["card"] = {"type": "raw", "data": card}
        return answer


_replies_json = msgspec.json.Decoder(list[Reply])
_encoder = msgspec.json.Encoder()


def _at(path: str, error: msgspec.ValidationError) -> ResultError:
    """msgspec says `... - at `$.x``; re-root its path under ours."""
    text = str(error)
    if " - at `$" in text:
        head, _, rest = text.partition(" - at `$")
        return ResultError(f"{head} - at `{path}{rest}")
    return ResultError(f"{text} - at `{path}`")


def parse_reply(value: Any, path: str = "$") -> Reply:
    """One Reply from a string, a dict with exactly one reply key, or a Reply struct.

    Raises ResultError naming the field when it is none of those.
    """
    if isinstance(value, Text | Post | Card | Template | Image | File):
        return value
    if isinstance(value, str):
        return Text(text=value)
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ResultError(f"expected a string or an object, got {kind} - at `{path}`")
    keys = [k for k in REPLY_TYPES if k in value]
    if len(keys) != 1:
        named = ", ".join(REPLY_TYPES)
        found = f"found {', '.join(keys)}" if keys else "found none"
        raise ResultError(f"expected exactly one of {named}; {found} - at `{path}`")
    key = keys[0]
    try:
        field = msgspec.convert(value[key], _FIELD_TYPES[key])
    except msgspec.ValidationError as error:
        raise _at(f"{path}.{key}", error) from None
    if key == "text" and not field:
        raise ResultError(f"text is empty - at `{path}.text`")
    if key in ("image", "file"):
        _check_base64(field.base64, f"{path}.{key}.base64")
    if key == "cardTemplate":
        return Template(card_template=field)
    return REPLY_TYPES[key](**{key: field})


def parse_result(value: Any) -> list[Reply]:
    """The replies a handler result asks for, in order; [] for None or an empty string.

    Takes what a handler produced: None, a string, a Reply struct, a dict
    (one reply, or `{"messages": [...]}`), or a list of replies. Raises
    ResultError naming the offending field.
    """
    if value is None or value == "":
        return []
    if isinstance(value, dict) and "messages" in value:
        extra = set(value) - {"messages"}
        if extra:
            raise ResultError(f"unexpected {', '.join(sorted(extra))} beside messages - at `$`")
        items = value["messages"]
        if not isinstance(items, list):
            raise ResultError("expected an array - at `$.messages`")
        return [parse_reply(item, f"$.messages[{i}]") for i, item in enumerate(items)]
    if isinstance(value, list | tuple):
        return [parse_reply(item, f"$[{i}]") for i, item in enumerate(value)]
    return [parse_reply(value)]


def parse_card_action_result(value: Any) -> CardActionResult | None:
    """A CardActionResult from a dict (or the struct); None for None or `{}`.

    Raises ResultError naming the field.
    """
    if value is None or isinstance(value, CardActionResult):
        return value
    if not isinstance(value, dict):
        raise ResultError(f"expected an object, got {type(value).__name__} - at `$`")
    extra = set(value) - {"toast", "card"}
    if extra:
        raise ResultError(f"unexpected {', '.join(sorted(extra))} - at `$`")
    try:
        result = msgspec.convert(value, CardActionResult)
    except msgspec.ValidationError as error:
        raise _at("$", error) from None
    return None if result.toast is None and result.card is None else result


def _check_base64(data: str, path: str) -> None:
    try:
        b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ResultError(f"not valid base64 - at `{path}`") from None


def decode_base64(data: str) -> bytes:
    """The bytes of an image or file source (validated by `parse_reply`)."""
    return b64decode(data)


def encode_replies(replies: list[Reply]) -> str:
    """The spool's form of a result: JSON of the tagged replies."""
    return _encoder.encode(replies).decode()


def decode_replies(stored: str) -> list[Reply]:
    """Read back `encode_replies`; a row written before results had shapes held plain text."""
    if stored.startswith("["):
        try:
            return _replies_json.decode(stored)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    return [Text(text=stored)] if stored else []


def reply_text(replies: list[Reply]) -> str:
    """The text parts of a result joined by blank lines (what chat history keeps)."""
    return "\n\n".join(r.text for r in replies if isinstance(r, Text))


def template_content(template: CardTemplate) -> dict[str, Any]:
    data: dict[str, Any] = {"template_id": template.id, "template_variable": template.variables}
    if template.version:
        data["template_version_name"] = template.version
    return {"type": "template", "data": data}


def to_content(reply: Reply, media_key: str | None = None) -> tuple[str, str]:
    """(msg_type, content JSON string) for the IM send API.

    Image and file replies need the key their upload returned (`media_key`).
    """
    match reply:
        case Text():
            return "text", _encoder.encode({"text": reply.text}).decode()
        case Post():
            return "post", _encoder.encode(reply.post).decode()
        case Card():
            return "interactive", _encoder.encode(reply.card).decode()
        case Template():
            return "interactive", _encoder.encode(template_content(reply.card_template)).decode()
        case Image():
            if not media_key:
                raise ValueError("an image is sent by the image_key of its upload")
            return "image", _encoder.encode({"image_key": media_key}).decode()
        case File():
            if not media_key:
                raise ValueError("a file is sent by the file_key of its upload")
            return "file", _encoder.encode({"file_key": media_key}).decode()
    raise TypeError(f"not a reply: {reply!r}")
