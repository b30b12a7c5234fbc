"""Webhook pushes: verified and decrypted by the SDK's own EventDispatcherHandler.

The SDK answers every failure with HTTP 500; the platform would then retry a
forged or garbage push for hours. Here a body that is not JSON or cannot be
decrypted is 400, a wrong token or signature is 401, and only a failure to
spool is 500 (so the platform retries). Every event type, v2 or v1, is
spooled once verified (handlers see them all, docs/event-path.md); 200
means it is in the spool. The SDK dispatches only the message type it has a
processor for; it verifies token and signature before looking for one, so
its "processor not found" answer marks a verified event of another type.
The body and the secrets are never logged.

Two refusals come before the SDK sees anything (docs/security.md):
- a bot with neither encryptKey nor verificationToken refuses every push
  (401): the SDK would accept any body from anyone;
- a signed push whose X-Lark-Request-Timestamp is further than `max_age`
  seconds from now is refused (401): the signature covers the timestamp, so a
  captured push replayed after the spool forgot its event_id cannot pass.
"""

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lark_oapi.core.const import (
    LARK_REQUEST_NONCE,
    LARK_REQUEST_SIGNATURE,
    LARK_REQUEST_TIMESTAMP,
    X_REQUEST_ID,
)
from lark_oapi.core.exception import NoAuthorizationException
from lark_oapi.core.model import RawRequest
from lark_oapi.event.custom import CustomizedEvent
from lark_oapi.event.dispatcher_handler import EventDispatcherHandler

from shared.botconfig import BotConfig
from shared.security import WEBHOOK_AUTH_REQUIRED
from worker.cardaction import CARD_ACTION_EVENT
from worker.content import MESSAGE_EVENT

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
_CANONICAL_HEADERS = (LARK_REQUEST_TIMESTAMP, LARK_REQUEST_NONCE, LARK_REQUEST_SIGNATURE)

WebhookResponse = tuple[int, bytes, str]


@dataclass(frozen=True)
class CallbackRequest:
    """A verified callback (card.action.trigger) whose answer is the HTTP response body."""

    payload: bytes


def _error(status: int, code: str, message: str) -> WebhookResponse:
    body = {"success": False, "error": {"code": code, "message": message}}
    return status, json.dumps(body).encode(), JSON_TYPE


class _SpoolFailed(Exception):
    pass


class WebhookReceiver:
    """Turns one raw webhook request into a response, spooling message events via `accept`."""

    def __init__(
        self, bot: BotConfig, accept: Callable[[bytes], None], max_age: float = 24 * 3600.0
    ) -> None:
        """`max_age`: seconds a signed push's timestamp may be off from now (either way)."""
        self._encrypt_key = bot.encrypt_key
        self._unauthenticated = not (bot.encrypt_key or bot.verification_token)
        self._max_age = max_age
        self._accept = accept
        self._plaintext = b""
        self._spool_error: Exception | None = None
        self._dispatcher = (
            EventDispatcherHandler.builder(bot.encrypt_key, bot.verification_token)
            .register_p2_customized_event(MESSAGE_EVENT, self._on_message)
            .register_p2_customized_event(CARD_ACTION_EVENT, self._on_callback)
            .build()
        )
        self._callback: bytes | None = None

    def _on_callback(self, _event: CustomizedEvent) -> None:
        """Verified by the SDK; answered by the caller, asynchronously, with a deadline."""
        self._callback = self._plaintext

    def _on_message(self, _event: CustomizedEvent) -> None:
        try:
            self._accept(self._plaintext)
        except Exception as exc:
            self._spool_error = exc
            raise _SpoolFailed("spool failed") from None

    def handle(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse | CallbackRequest:
        """Verify, decrypt and spool one push; see the module docstring for the statuses.

        A verified card action comes back as a CallbackRequest for the caller to answer.
        """
        if self._unauthenticated:
            return _error(401, "webhook_unauthenticated", WEBHOOK_AUTH_REQUIRED)
        stale = self._stale(headers)
        if stale is not None:
            return _error(401, "stale_timestamp", stale)
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "bad_body", "body is not JSON")
        if not isinstance(envelope, dict):
            return _error(400, "bad_body", "body is not a JSON object")
        try:
            plaintext = self._dispatcher._decrypt(body, self._encrypt_key)
            event = json.loads(plaintext)
        except NoAuthorizationException:
            return _error(401, "no_encrypt_key", "encrypted push but no encrypt key configured")
        except Exception:
            return _error(400, "bad_body", "encrypted body cannot be decrypted")
        if not isinstance(event, dict):
            return _error(400, "bad_body", "event is not a JSON object")

        request = RawRequest()
        request.uri = "/webhook"
        request.body = body
        request.headers = self._canonical_headers(headers)
        self._plaintext = plaintext.encode()
        self._spool_error = None
        self._callback = None
        try:
            response = self._dispatcher.do(request)
        finally:
            self._plaintext = b""
        if response.status_code == 200 and self._callback is not None:
            return CallbackRequest(self._callback)
        if response.status_code == 200:
            return 200, response.content or b"{}", JSON_TYPE
        if b"processor not found" in (response.content or b""):
            return self._spool_verified(plaintext.encode())
        return self._map_failure(response.content or b"")

    def _spool_verified(self, plaintext: bytes) -> WebhookResponse:
        try:
            self._accept(plaintext)
        except Exception as exc:
            log.error("webhook event could not be spooled: %s", exc)
            return _error(500, "spool_failed", "event could not be stored, retry later")
        return 200, b'{"msg":"success"}', JSON_TYPE

    def _stale(self, headers: Mapping[str, str], now: float | None = None) -> str | None:
        """Why a signed push's timestamp is refused, or None (unsigned pushes are not judged)."""
        if not self._encrypt_key:
            return None
        lower = {k.lower(): v for k, v in headers.items()}
        raw = lower.get(LARK_REQUEST_TIMESTAMP.lower())
        if raw is None:
            return None
        try:
            timestamp = float(raw)
        except ValueError:
            return "X-Lark-Request-Timestamp is not a number of seconds"
        skew = abs((time.time() if now is None else now) - timestamp)
        if skew > self._max_age:
            return (f"X-Lark-Request-Timestamp is {skew:.0f} s from now; pushes older than"
                    f" {self._max_age:.0f} s are refused as replays")
        return None


    def _canonical_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The SDK reads exact-case names; a missing signature header must fail as forged."""
        lower = {k.lower(): v for k, v in headers.items()}
        canonical = {name: lower.get(name.lower(), "") for name in _CANONICAL_HEADERS}
        if X_REQUEST_ID.lower() in lower:
            canonical[X_REQUEST_ID] = lower[X_REQUEST_ID.lower()]
        return canonical

    def _map_failure(self, content: bytes) -> WebhookResponse:
        if self._spool_error is not None:
            log.error("webhook event could not be spooled: %s", self._spool_error)
            return _error(500, "spool_failed", "event could not be stored, retry later")
        try:
            message = str(json.loads(content).get("msg", ""))
        except (ValueError, AttributeError):
            message = ""
        if "verification_token" in message:
            return _error(401, "invalid_token", "verification token does not match")
        if "signature" in message:
            return _error(401, "invalid_signature", "signature does not match")
        return _error(400, "bad_event", "event could not be parsed")
