"""Bot secrets at rest: what every store engine seals before writing and opens after reading.

The app secret, verification token, encrypt key and the handler's secret fields
are stored Fernet-encrypted (see store.secrets_box); the handler spec is stored
as its JSON with those fields sealed. Every secret that passes through here is
registered with the log redactor, so this process never writes one to its log.
"""

import functools
from typing import Any

import msgspec

from shared.botconfig import (
    SECRET_HANDLER_FIELDS,
    BotConfig,
    BotOptions,
    EchoHandler,
    HandlerSpec,
)
from shared.logs import redactor
from store.secrets_box import SecretBox, SecretKeyError

KEY_CANARY = "larkfleet-secret-key-check"
"""Stored sealed under the meta key 'key_check' to prove the key opens this database."""


def redaction_owner(bot_id: str) -> str:
    """The log redactor's key for one bot's secrets: replaced on change, dropped on delete."""
    return f"bot:{bot_id}"


class BotCodec:
    """Turns a BotConfig into stored columns and back, sealing and opening secrets."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def check_canary(self, sealed: str) -> None:
        """Raises SecretKeyError when `sealed` is not the canary under this key."""
        if self.box.open(sealed) != KEY_CANARY:
            raise SecretKeyError("the secret key does not match this registry")

    def columns(self, config: BotConfig) -> tuple[Any, ...]:
        """(name, app_id, app_secret, verification_token, encrypt_key, use_websocket,
        domain, handler, options) with the secrets sealed: the order of `config`."""
        redactor.set(redaction_owner(config.id), *config.secrets())
        seal = self.box.seal
        return (
            config.name,
            config.app_id,
            seal(config.app_secret),
            seal(config.verification_token),
            seal(config.encrypt_key),
            int(config.use_websocket),
            config.domain,
            self._seal_handler(config.handler),
            self._seal_options(config.options),
        )

    def config(self, bot_id: str, columns: tuple[Any, ...]) -> BotConfig:
        """The BotConfig from the stored columns of `columns()`, secrets opened."""
        (name, app_id, app_secret, verification_token, encrypt_key,
         use_websocket, domain, handler, options) = columns
        config = BotConfig(
            id=bot_id,
            name=name,
            app_id=app_id,
            app_secret=self.box.open(app_secret),
            verification_token=self.box.open(verification_token),
            encrypt_key=self.box.open(encrypt_key),
            use_websocket=bool(use_websocket),
            domain=domain,
            handler=self._open_handler(handler),
            options=self._open_options(options),
        )
        redactor.set(redaction_owner(bot_id), *config.secrets())
        return config

    def _seal_options(self, options: BotOptions) -> str:
        """Options as JSON, sealed whole when they hold a proxy URL (it may carry a password)."""
        plain = msgspec.json.encode(options).decode()
        return self.box.seal(plain) if options.proxy else plain

    def _open_options(self, stored: str) -> BotOptions:
        """Plain JSON (`{...}`, also the column's default) or a sealed JSON."""
        text = stored if not stored or stored.startswith("{") else self.box.open(stored)
        return msgspec.json.decode(text or "{}", type=BotOptions)

    def _seal_handler(self, handler: HandlerSpec) -> str:
        data = msgspec.to_builtins(handler)
        for name in _secret_wire_names(type(handler)):
            data[name] = self.box.seal(data.get(name, ""))
        return msgspec.json.encode(data).decode()

    def _open_handler(self, stored: str) -> HandlerSpec:
        data = msgspec.json.decode(stored)
        kind = _HANDLER_TYPES.get(data.get("kind"), EchoHandler)
        for name in _secret_wire_names(kind):
            data[name] = self.box.open(data.get(name, ""))
        return msgspec.convert(data, HandlerSpec)


_HANDLER_TYPES: dict[str, type] = {
    cls.__struct_config__.tag: cls for cls in HandlerSpec.__args__  # type: ignore[attr-defined]
}


@functools.cache
def _secret_wire_names(kind: type) -> tuple[str, ...]:
    """The camelCase names of the handler's secret fields, as they appear in its JSON.
    Cached: `msgspec.structs.fields` reads the class's annotations on every call, which
    was ~10 % of the supervisor's CPU per connect call (py-spy, 1,000-bot connect)."""
    secret = set(SECRET_HANDLER_FIELDS.get(kind, ()))
    return tuple(f.encode_name for f in msgspec.structs.fields(kind) if f.name in secret)
