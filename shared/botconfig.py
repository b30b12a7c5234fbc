"""A bot's configuration as the worker needs it, and the handler specs.

The API decodes requests into these same handler structs, so there is one
schema for handlers (camelCase on the wire, as the HTTP API speaks).
"""

from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

FEISHU_BASE_URL = "https://open.feishu.cn"
LARK_BASE_URL = "https://open.larksuite.com"


class _HandlerBase(msgspec.Struct, tag_field="kind", rename="camel", forbid_unknown_fields=True):
    pass


class EchoHandler(_HandlerBase, tag="echo"):
    """Reply with the text that was received."""


class ForwardHandler(_HandlerBase, tag="forward"):
    """POST the event JSON, HMAC-signed with `secret`; the JSON answer is a handler result."""

    url: str
    secret: str = ""
    timeout: float = 10.0


class PythonHandler(_HandlerBase, tag="python"):
    """Call `package.module:function` with the parsed message; it returns a handler result."""

    target: str


class OpenAIHandler(_HandlerBase, tag="openai"):
    """Ask an OpenAI-compatible chat completions endpoint, with the chat's recent turns."""

    base_url: str
    model: str
    api_key: str = ""
    system_prompt: str = ""
    history_turns: int = 10
    timeout: float = 30.0
    stream: bool = True
    """Ask for a streamed answer and show it as one card updated while it is written."""


HandlerSpec = EchoHandler | ForwardHandler | PythonHandler | OpenAIHandler

SECRET_HANDLER_FIELDS: dict[type, tuple[str, ...]] = {
    ForwardHandler: ("secret",),
    OpenAIHandler: ("api_key",),
}
"""Handler fields that are secrets: never returned by the API, never logged."""


ProxySetting = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(direct|https?://[^\s/]+/?)$",
        description="`direct`, or an HTTP proxy URL (`http://[user:password@]host:port`)",
    ),
]


def mask_proxy(url: str) -> str:
    """A proxy URL fit for a log line: its password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class BotOptions(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """How a bot treats what the platform sends (docs/event-path.md); defaults are the
    safe choice, so a fleet of bots in one group never answers announcements or each other."""

    answer_at_all: bool = False
    """An `@_all` (@everyone) mention counts as a mention of this bot."""
    answer_bots: bool = False
    """Messages sent by other apps (`sender_type: "app"`) reach the handler; the bot's own
    messages never do."""
    reply_fallback: Literal["drop", "send"] = "drop"
    """When the message to answer is gone (withdrawn or deleted: 230011, 231003): `send`
    the answer as a new message in the chat, or `drop` it (logged and counted)."""
    typing_reaction: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    """An emoji type (e.g. `Typing`, `OnIt`) put on the message being answered while the
    handler works and removed when the answer is out; null for none."""
    proxy: ProxySetting | None = None
    """Proxy for every platform connection (WebSocket and HTTP); null follows the
    service's setting (default: HTTPS_PROXY/HTTP_PROXY/NO_PROXY), `direct` uses none."""


class BotConfig(msgspec.Struct, kw_only=True):
    """Everything a worker needs to run one bot. Holds secrets: never log it whole."""

    id: str
    name: str
    app_id: str
    app_secret: str
    verification_token: str = ""
    encrypt_key: str = ""
    use_websocket: bool = True
    domain: str = "feishu"
    handler: HandlerSpec = msgspec.field(default_factory=EchoHandler)
    options: BotOptions = msgspec.field(default_factory=BotOptions)

    @property
    def base_url(self) -> str:
        return resolve_domain(self.domain)

    @property
    def webhook_unauthenticated(self) -> bool:
        """Webhook mode with neither encryptKey nor verificationToken: anyone could push."""
        return not self.use_websocket and not self.encrypt_key and not self.verification_token

    def secrets(self) -> list[str]:
        """Every secret value this config holds, for the log redactor."""
        values = [self.app_secret, self.verification_token, self.encrypt_key]
        fields = SECRET_HANDLER_FIELDS.get(type(self.handler), ())
        values += [getattr(self.handler, f) for f in fields]
        if self.options.proxy:
            values.append(urlsplit(self.options.proxy).password or "")
        return [v for v in values if v]


DomainName = Literal["feishu", "lark"]


def resolve_domain(domain: str) -> str:
    """Map `feishu`/`lark` to the platform's base URL; any http(s) URL is used as is.

    A trailing slash is dropped: the SDK joins paths by plain concatenation.
    """
    if domain == "feishu":
        return FEISHU_BASE_URL
    if domain == "lark":
        return LARK_BASE_URL
    if domain.startswith(("http://", "https://")):
        return domain.rstrip("/")
    raise ValueError(f"domain must be 'feishu', 'lark' or an http(s) URL, not {domain!r}")
