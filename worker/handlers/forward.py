"""The forward handler: POST the raw v2 event JSON to an internal URL, HMAC-signed.

The target answers with a handler result as its JSON body (shared/results.py):
`{"text": ...}` as before, or a post, a card, a template, an image, a file,
`{"messages": [...]}`; 204 or an empty body means no reply. A card click is
posted the same way and answered with a CardActionResult body.
"""

import hashlib
import hmac

import aiohttp
import msgspec

from shared.botconfig import ForwardHandler as ForwardSpec
from shared.results import (
    REPLY_TYPES,
    CardActionResult,
    ResultError,
    parse_card_action_result,
    parse_result,
)
from shared.urlpolicy import UrlRefused
from worker.cardaction import CardAction
from worker.content import Message
from worker.errors import EventError
from worker.handlers.base import Answer, Handler
from worker.handlers.http import HttpSession, refusal_of

SIGNATURE_HEADER = "X-Larkfleet-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=<hex hmac-sha256(secret, body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ForwardHandler(Handler):
    """Replies with what the target's JSON body says; 204 or an empty body means no reply."""

    def __init__(self, spec: ForwardSpec, http: HttpSession) -> None:
        self._spec = spec
        self._http = http

    async def _post(self, body: bytes, event_id: str) -> bytes:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._spec.secret, body),
            "X-Larkfleet-Event-Id": event_id,
        }
        timeout = aiohttp.ClientTimeout(total=self._spec.timeout)
        try:
            self._http.check_url(self._spec.url)
            async with self._http.get().post(
                self._spec.url, data=body, headers=headers, timeout=timeout,
                allow_redirects=False,
            ) as resp:
                if resp.status == 204:
                    return b""
                if resp.status == 429:
                    raise EventError("forward target answered 429", rate_limited=True)
                if resp.status >= 300:
                    raise EventError(f"forward target answered HTTP {resp.status}")
                return await resp.read()
        except TimeoutError:
            raise EventError(f"forward target timed out after {self._spec.timeout} s") from None
        except UrlRefused as exc:
            raise EventError(f"forward target refused by the URL policy: {exc}",
                             permanent=True) from None
        except aiohttp.ClientError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                raise EventError(f"forward target refused by the URL policy: {refused}",
                                 permanent=True) from None
            raise EventError(f"forward target unreachable: {type(exc).__name__}") from None

    async def handle(self, message: Message) -> Answer:
        answer = _json_of(await self._post(message.raw, message.event_id))
        if isinstance(answer, dict) and not _names_a_reply(answer):
            return []
        try:
            return parse_result(answer)
        except ResultError as exc:
            raise EventError(f"forward target answered {exc}", permanent=True) from None

    async def card_action(self, action: CardAction) -> CardActionResult | None:
        answer = _json_of(await self._post(action.raw, action.event_id))
        try:
            return parse_card_action_result(answer)
        except ResultError as exc:
            raise EventError(f"forward target answered a card action with {exc}",
                             permanent=True) from None


def _names_a_reply(answer: dict) -> bool:
    """Whether a JSON object asks for a reply. As before results had shapes, an object
    naming none (`{}`, `{"ok": true}`) or an empty `text` means no reply."""
    keys = [key for key in REPLY_TYPES if key in answer]
    if keys == ["text"] and not answer["text"]:
        return False
    return "messages" in answer or bool(keys)


def _json_of(answer: bytes) -> object:
    if not answer.strip():
        return None
    try:
        return msgspec.json.decode(answer)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise EventError("forward target answered something that is not JSON") from None
