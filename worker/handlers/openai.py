"""The openai handler: an OpenAI-compatible chat completions endpoint with chat history.

History lives in the spool DB (table `history`) and is written by the
consumer in the same transaction that marks the event done, so a retried
event never stores a turn twice.
"""

import aiohttp

from shared.botconfig import OpenAIHandler as OpenAISpec
from worker.content import Message
from worker.errors import EventError
from worker.handlers.base import Handler
from worker.handlers.http import HttpSession
from worker.spool import Spool


class OpenAIHandler(Handler):
    """Sends system prompt + the chat's last turns + the new text; replies with the answer."""

    def __init__(self, spec: OpenAISpec, http: HttpSession, spool: Spool) -> None:
        self._spec = spec
        self._http = http
        self._spool = spool

    def _messages(self, message: Message) -> list[dict[str, str]]:
        messages = []
        if self._spec.system_prompt:
            messages.append({"role": "system", "content": self._spec.system_prompt})
        for role, content in self._spool.history(message.chat_id, 2 * self._spec.history_turns):
            messages.append({"role": role, "content": content})
        messages.append({"role": "user", "content": message.text or ""})
        return messages

    async def handle(self, message: Message) -> str | None:
        if not message.text:
            return None
        url = self._spec.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self._spec.api_key}"} if self._spec.api_key else {}
        body = {"model": self._spec.model, "messages": self._messages(message)}
        timeout = aiohttp.ClientTimeout(total=self._spec.timeout)
        try:
            async with self._http.get().post(
                url, json=body, headers=headers, timeout=timeout
            ) as resp:
                if resp.status == 429:
                    raise EventError("completions endpoint answered 429", rate_limited=True)
                if resp.status >= 300:
                    raise EventError(f"completions endpoint answered HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except TimeoutError:
            timeout_s = self._spec.timeout
            raise EventError(f"completions endpoint timed out after {timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise EventError(f"completions endpoint unreachable: {type(exc).__name__}") from None
        except ValueError:
            raise EventError("completions endpoint answered something that is not JSON") from None
        try:
            answer = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EventError("completions answer has no choices[0].message.content") from None
        return answer if isinstance(answer, str) and answer else None

    def history(self, message: Message, answer: str | None) -> list[tuple[str, str]]:
        if not message.text or not answer:
            return []
        return [("user", message.text), ("assistant", answer)]
