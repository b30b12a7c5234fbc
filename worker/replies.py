"""Outbound IM messages (reply and create) through the SDK's own IM service.

The SDK fetches tenant tokens synchronously with `requests`, even from its
async methods, so every call runs in a thread: the event loop also carries
the SDK connection and its ACKs and must never block. The threads are our
own, so the loop's default executor stays free for the connection side.
"""

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lark_oapi.api.im.service import ImService
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.model import Config

from shared.botconfig import BotConfig
from shared.idempotency import send_uuid

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = frozenset({99991400, 230020, 11232})
API_TIMEOUT_S = 15.0


def reply_uuid(event_id: str) -> str:
    """The idempotency key of the (first) reply to an event (shared/idempotency.py)."""
    return send_uuid(event_id)


@dataclass(frozen=True)
class SendResult:
    """The outcome of one API call; `code` is the platform's code (0 = ok)."""

    ok: bool
    message_id: str | None = None
    code: int | None = None
    error: str | None = None
    http_status: int | None = None

    @property
    def rate_limited(self) -> bool:
        return self.code in RATE_LIMIT_CODES or self.http_status == 429


def _im_service(bot: BotConfig) -> ImService:
    """The SDK's IM service alone, on the config lark.Client.builder() would make.

    `build()` instantiates every one of the SDK's ~50 API services: in a
    worker forked from the zygote that was ~6 MiB of private memory per bot
    (measured) for APIs a bot never calls. Tokens are still fetched and
    cached by the SDK (its TokenManager works from this config).
    """
    config = Config()
    config.app_id = bot.app_id
    config.app_secret = bot.app_secret
    config.domain = bot.base_url
    config.timeout = API_TIMEOUT_S
    return ImService(config)


class Messenger:
    """Sends text messages as the bot."""

    def __init__(self, bot: BotConfig, threads: int = 4) -> None:
        self._im = _im_service(bot)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="im-send")

    def close(self) -> None:
        """Stop the sender threads (calls in flight finish on their own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, method, request) -> SendResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, method, request)

    async def reply(self, message_id: str, text: str, uuid: str) -> SendResult:
        """Reply to a message with text, idempotent by `uuid`."""
        body = (
            ReplyMessageRequestBody.builder()
            .msg_type("text")
            .content(json.dumps({"text": text}, ensure_ascii=False))
            .uuid(uuid)
            .build()
        )
        request = ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()
        return await self._run(self._im.v1.message.reply, request)

    async def create(
        self, receive_id: str, receive_id_type: str, text: str, uuid: str | None
    ) -> SendResult:
        """Send a new message to a user or chat."""
        builder = (
            CreateMessageRequestBody.builder()
            .receive_id(receive_id)
            .msg_type("text")
            .content(json.dumps({"text": text}, ensure_ascii=False))
        )
        if uuid:
            builder = builder.uuid(uuid)
        request = (
            CreateMessageRequest.builder()
            .receive_id_type(receive_id_type)
            .request_body(builder.build())
            .build()
        )
        return await self._run(self._im.v1.message.create, request)

    @staticmethod
    def _call(method, request) -> SendResult:
        try:
            response = method(request)
        except Exception as exc:
            code = getattr(exc, "code", None)
            return SendResult(False, code=code if isinstance(code, int) else None,
                              error=f"{type(exc).__name__}: {exc}")
        status = response.raw.status_code if response.raw is not None else None
        if not response.success():
            return SendResult(False, code=response.code, error=response.msg, http_status=status)
        message_id = response.data.message_id if response.data is not None else None
        return SendResult(True, message_id=message_id, code=0, http_status=status)
