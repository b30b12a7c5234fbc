"""Request and response bodies (msgspec, camelCase): decoding them is the validation.

Response structs never have a field for a secret: a bot says `hasAppSecret`,
a handler says `hasSecret`/`hasApiKey`, so a secret cannot leak by a field
being added to a response later.
"""

import functools
import operator
from datetime import datetime
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
from shared.clocks import iso
from shared.status import BotStatus
from store import BotRecord, TokenRecord, User

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
"""A bot or user name: shown in lists, logs and the dashboard, so no control characters."""
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
    shared: bool = False
    """Admin only: other bots may use this appId too (one bot per app otherwise)."""


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
    shared: bool | UnsetType = UNSET
    """Admin only: other bots may use this appId too."""


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
    shared: bool = False
    created_at: str
    updated_at: str



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
        shared=record.shared,
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


class IssueToken(_Body):
    """POST /api/users/{id}/tokens: scope `owner` (default), `viewer`, or `admin` for an admin."""

    scope: Literal["admin", "owner", "viewer"] = "owner"
    expires_at: datetime | None = None


class TokenIssued(Struct, rename="camel", kw_only=True):
    """The issued token, shown once: `id` names it for listing and revoking."""

    id: str
    user_id: str
    name: str
    token: str
    scope: str
    expires_at: str | None


class TokenView(Struct, rename="camel", kw_only=True):
    id: str
    scope: str
    kind: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None


def token_view(record: TokenRecord) -> TokenView:
    return TokenView(id=record.id, scope=record.scope, kind=record.kind,
                     created_at=iso(record.created) or "", expires_at=iso(record.expires),
                     last_used_at=iso(record.last_used))


class TokenList(Struct, rename="camel", kw_only=True):
    user_id: str
    tokens: list[TokenView]


class TokenRevoked(Struct, rename="camel", kw_only=True):
    success: bool = True
    user_id: str
    token_id: str


class AuditView(Struct, rename="camel", kw_only=True):
    id: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str


class AuditList(Struct, rename="camel", kw_only=True):
    """Newest first; `next` is the `before` value for the following page (null: no more)."""

    entries: list[AuditView]
    next: int | None


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
