"""The forward handler: POST the raw v2 event JSON to an internal URL, HMAC-signed."""

import hashlib
import hmac

import aiohttp
import msgspec

from shared.botconfig import ForwardHandler as ForwardSpec
from worker.content import Message
from worker.errors import EventError
from worker.handlers.base import Handler
from worker.handlers.http import HttpSession

SIGNATURE_HEADER = "X-Larkfleet-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=<hex hmac-sha256(secret, body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ForwardHandler(Handler):
    """Replies with the target's JSON `text`; 204 or no `text` means no reply."""

    def __init__(self, spec: ForwardSpec, http: HttpSession) -> None:
        self._spec = spec
        self._http = http

    async def handle(self, message: Message) -> str | None:
        body = message.raw
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._spec.secret, body),
            "X-Larkfleet-Event-Id": message.event_id,
        }
        timeout = aiohttp.ClientTimeout(total=self._spec.timeout)
        try:
            async with self._http.get().post(
                self._spec.url, data=body, headers=headers, timeout=timeout
            ) as resp:
                if resp.status == 204:
                    return None
                if resp.status == 429:
                    raise EventError("forward target answered 429", rate_limited=True)
                if resp.status >= 300:
                    raise EventError(f"forward target answered HTTP {resp.status}")
                answer = await resp.read()
        except TimeoutError:
            raise EventError(f"forward target timed out after {self._spec.timeout} s") from None
        except aiohttp.ClientError as exc:
            raise EventError(f"forward target unreachable: {type(exc).__name__}") from None
        return _text_of(answer)


def _text_of(answer: bytes) -> str | None:
    if not answer.strip():
        return None
    try:
        data = msgspec.json.decode(answer)
    except msgspec.DecodeError:
        raise EventError("forward target answered something that is not JSON") from None
    text = data.get("text") if isinstance(data, dict) else None
    return text if isinstance(text, str) and text else None
