"""Request and response bodies (msgspec, camelCase): decoding them is the validation.

Response structs never have a field for a secret: a bot says `hasAppSecret`,
a handler says `hasSecret`/`hasApiKey`, so a secret cannot leak by a field
being added to a response later.
"""

import functools
import operator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from shared.botconfig import (
    SECRET_HANDLER_FIELDS,
    BotOptions,
    EchoHandler,
    HandlerSpec,
    mask_proxy,
)
from shared.status import BotStatus
from store import BotRecord, User

Name = Annotated[str, Meta(min_length=1, max_length=200)]
AppId = Annotated[str, Meta(min_length=1, max_length=200)]
Secret = Annotated[str, Meta(max_length=1000)]
RequiredSecret = Annotated[str, Meta(min_length=1, max_length=1000)]
Domain = Annotated[str, Meta(min_length=1, max_length=2000)]
ReceiveIdType = Literal["open_id", "user_id", "union_id", "email", "chat_id"]


class _Body(Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    pass


class CreateBot(_Body):
    name: Name
    app_id: AppId
    app_secret: RequiredSecret
    verification_token: Secret = ""
    encrypt_key: Secret = ""
    use_websocket: bool = msgspec.field(default=True, name="useWebSocket")
    domain: Domain = "feishu"
    handler: HandlerSpec = msgspec.field(default_factory=EchoHandler)
    options: BotOptions = msgspec.field(default_factory=BotOptions)


class PatchBot(_Body):
    """Only the fields present change; a handler is replaced whole (secrets included)."""

    name: Name | UnsetType = UNSET
    app_id: AppId | UnsetType = UNSET
    app_secret: RequiredSecret | UnsetType = UNSET
    verification_token: Secret | UnsetType = UNSET
    encrypt_key: Secret | UnsetType = UNSET
    use_websocket: bool | UnsetType = msgspec.field(default=UNSET, name="useWebSocket")
    domain: Domain | UnsetType = UNSET
    handler: HandlerSpec | UnsetType = UNSET
    options: BotOptions | UnsetType = UNSET
    """Replaced whole, like the handler: absent options take their defaults."""


class CreateUser(_Body):
    name: Name


class SendMessage(_Body):
    """One message of any handler result shape (shared/results.py), or `messages` in order.

    The shapes are validated by `parse_result` (api/messages.py), which names the field.
    """

    receive_id: Annotated[str, Meta(min_length=1, max_length=200)]
    receive_id_type: ReceiveIdType
    uuid: Annotated[str, Meta(min_length=1, max_length=50)] | None = None
    """Idempotency key; when absent the server generates one and answers it."""
    text: Annotated[str, Meta(min_length=1, max_length=150_000)] | None = None
    post: dict[str, Any] | None = None
    card: dict[str, Any] | None = None
    card_template: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    messages: list[Any] | None = None

    def result(self) -> dict[str, Any]:
        """The handler-result object this body carries (the fields given, camelCase)."""
        fields = {"text": self.text, "post": self.post, "card": self.card,
                  "cardTemplate": self.card_template, "image": self.image, "file": self.file,
                  "messages": self.messages}
        return {key: value for key, value in fields.items() if value is not None}


def _public_handler(kind: type) -> type:
    """The handler struct as responses show it: each secret field becomes `has<Field>`."""
    secret = set(SECRET_HANDLER_FIELDS.get(kind, ()))
    fields: list[tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(kind):
        if field.name in secret:
            fields.append((f"has_{field.name}", bool, False))
        elif field.required:
            fields.append((field.name, field.type))
        else:
            default = field.default if field.default is not msgspec.NODEFAULT else None
            fields.append((field.name, field.type, default))
    config = kind.__struct_config__
    return msgspec.defstruct(
        f"{kind.__name__}View", fields, tag_field=config.tag_field, tag=config.tag,
        rename="camel", kw_only=True,
    )


_VIEWS = {kind: _public_handler(kind) for kind in get_args(HandlerSpec)}
HandlerView = functools.reduce(operator.or_, _VIEWS.values())


def handler_view(handler: HandlerSpec) -> Any:
    kind = type(handler)
    values = {}
    secret = set(SECRET_HANDLER_FIELDS.get(kind, ()))
    for name in kind.__struct_fields__:
        value = getattr(handler, name)
        if name in secret:
            values[f"has_{name}"] = bool(value)
        else:
            values[name] = value
    return _VIEWS[kind](**values)


class BotView(Struct, rename="camel", kw_only=True):
    id: str
    name: str
    app_id: str
    has_app_secret: bool
    has_verification_token: bool
    has_encrypt_key: bool
    use_websocket: bool = msgspec.field(name="useWebSocket")
    domain: str
    handler: HandlerView  # type: ignore[valid-type]
    options: BotOptions
    owner: str
    desired_connected: bool
    created_at: str
    updated_at: str


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def bot_view(record: BotRecord) -> BotView:
    config = record.config
    return BotView(
        id=config.id,
        name=config.name,
        app_id=config.app_id,
        has_app_secret=bool(config.app_secret),
        has_verification_token=bool(config.verification_token),
        has_encrypt_key=bool(config.encrypt_key),
        use_websocket=config.use_websocket,
        domain=config.domain,
        handler=handler_view(config.handler),
        options=msgspec.structs.replace(
            config.options, proxy=config.options.proxy and mask_proxy(config.options.proxy)),
        owner=record.owner,
        desired_connected=record.desired_connected,
        created_at=iso(record.created) or "",
        updated_at=iso(record.updated) or "",
    )


class BotList(Struct, rename="camel"):
    bots: list[BotView]


class BotDeleted(Struct, rename="camel", kw_only=True):
    success: bool = True
    bot_id: str


class WsResult(Struct, rename="camel", kw_only=True):
    success: bool = True
    bot_id: str
    status: Literal["connecting", "disconnected"]


class StatusList(Struct):
    connections: list[BotStatus]


class UserView(Struct, rename="camel", kw_only=True):
    id: str
    name: str
    is_admin: bool
    created_at: str


def user_view(user: User) -> UserView:
    return UserView(id=user.id, name=user.name, is_admin=user.is_admin,
                    created_at=iso(user.created) or "")


class UserList(Struct):
    users: list[UserView]


class UserToken(Struct):
    """The only response that carries a token: the caller must keep it now."""

    id: str
    name: str
    token: str


class UserDeleted(Struct, rename="camel", kw_only=True):
    success: bool = True
    user_id: str


class TokensRevoked(Struct, rename="camel", kw_only=True):
    success: bool = True
    user_id: str
    revoked: int


class MessageSent(Struct, rename="camel", kw_only=True):
    """`messageId` is the first message's platform id; `messageIds` all of them, in order;
    `uuid` the idempotency key used (the caller's, or one the server generated)."""

    success: bool = True
    bot_id: str
    message_id: str | None
    message_ids: list[str] = msgspec.field(default_factory=list)
    uuid: str


class DeadLetterView(Struct, rename="camel", kw_only=True):
    event_id: str
    chat_id: str
    event_type: str
    attempts: int
    last_error: str | None
    created_at: str | None
    updated_at: str | None


class DeadLetterList(Struct, rename="camel", kw_only=True):
    bot_id: str
    dead_letters: list[DeadLetterView]


class RetryQueued(Struct, rename="camel", kw_only=True):
    success: bool = True
    bot_id: str
    event_id: str
    status: Literal["pending"] = "pending"


class Health(Struct, omit_defaults=True):
    status: str
    node: str | None = None
    """/readyz: this node's id (cluster mode and single host alike)."""
