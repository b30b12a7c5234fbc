"""The openai handler: an OpenAI-compatible chat completions endpoint with chat history.

History lives in the spool DB (table `history`) and is written by the
consumer in the same transaction that marks the event done, so a retried
event never stores a turn twice.

With `stream` (the default) the request asks for server-sent events and the
answer is a text stream, shown as one card updated while it is written
(worker/streaming.py); an endpoint that answers plain JSON anyway is read
as one piece. Without it the answer is one text reply.
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from shared.botconfig import OpenAIHandler as OpenAISpec
from shared.results import Text
from shared.urlpolicy import UrlRefused
from worker.content import Message, neutralise_at_all
from worker.errors import EventError
from worker.handlers.base import Answer, Handler
from worker.handlers.http import HttpSession, refusal_of
from worker.spool import Spool


class OpenAIHandler(Handler):
    """Sends system prompt + the thread's (or chat's) last turns + the new text; replies
    with the answer, `<at user_id="all">` neutralised. Acts on messages only."""

    def __init__(self, spec: OpenAISpec, http: HttpSession, spool: Spool) -> None:
        self._spec = spec
        self._http = http
        self._spool = spool

    def _messages(self, message: Message) -> list[dict[str, str]]:
        messages = []
        if self._spec.system_prompt:
            messages.append({"role": "system", "content": self._spec.system_prompt})
        turns = self._spool.history(message.conversation, 2 * self._spec.history_turns)
        for role, content in turns:
            messages.append({"role": role, "content": content})
        messages.append({"role": "user", "content": message.text or ""})
        return messages

    async def handle(self, message: Message) -> Answer:
        if not message.is_message or not message.text:
            return []
        if self._spec.stream:
            return self._stream(message)
        answer = "".join([piece async for piece in self._stream(message)])
        return [Text(text=neutralise_at_all(answer))] if answer else []

    async def _stream(self, message: Message) -> AsyncIterator[str]:
        """The answer's pieces as they arrive (one piece when the endpoint does not stream)."""
        url = self._spec.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self._spec.api_key}"} if self._spec.api_key else {}
        body: dict[str, Any] = {"model": self._spec.model, "messages": self._messages(message)}
        if self._spec.stream:
            body["stream"] = True
            timeout = aiohttp.ClientTimeout(sock_connect=self._spec.timeout,
                                            sock_read=self._spec.timeout)
        else:
            timeout = aiohttp.ClientTimeout(total=self._spec.timeout)
        try:
            self._http.check_url(url)
            async with self._http.get().post(
                url, json=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                if resp.status == 429:
                    raise EventError("completions endpoint answered 429", rate_limited=True)
                if resp.status >= 300:
                    raise EventError(f"completions endpoint answered HTTP {resp.status}")
                if resp.content_type == "text/event-stream":
                    async for line in resp.content:
                        piece = _delta(line)
                        if piece is None:
                            break
                        if piece:
                            yield piece
                else:
                    yield _content(await resp.read())
        except TimeoutError:
            timeout_s = self._spec.timeout
            raise EventError(f"completions endpoint timed out after {timeout_s} s") from None
        except UrlRefused as exc:
            raise EventError(f"completions endpoint refused by the URL policy: {exc}",
                             permanent=True) from None
        except aiohttp.ClientError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                raise EventError(f"completions endpoint refused by the URL policy: {refused}",
                                 permanent=True) from None
            raise EventError(f"completions endpoint unreachable: {type(exc).__name__}") from None

    def history(self, message: Message, answer: str | None) -> list[tuple[str, str]]:
        if not message.text or not answer:
            return []
        return [("user", message.text), ("assistant", answer)]


def _content(body: bytes) -> str:
    """`choices[0].message.content` of a whole (not streamed) answer."""
    try:
        answer = json.loads(body)["choices"][0]["message"]["content"]
    except ValueError:
        raise EventError("completions endpoint answered something that is not JSON") from None
    except (KeyError, IndexError, TypeError):
        raise EventError("completions answer has no choices[0].message.content") from None
    return answer if isinstance(answer, str) else ""


def _delta(line: bytes) -> str | None:
    """The text of one server-sent event line ('' for none), None at `data: [DONE]`."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return ""
    data = line[5:].strip()
    if data == b"[DONE]":
        return None
    try:
        chunk = json.loads(data)
        piece = chunk["choices"][0].get("delta", {}).get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise EventError("completions stream sent a chunk without choices[0].delta") from None
    return piece if isinstance(piece, str) else ""
