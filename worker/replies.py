"""Outbound IM messages (reply and create) through the SDK's own IM service.

The SDK fetches tenant tokens synchronously with `requests`, even from its
async methods, so every call runs in a thread: the event loop also carries
the SDK connection and its ACKs and must never block. The threads are our
own, so the loop's default executor stays free for the connection side.
"""

import asyncio
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lark_oapi.api.im.service import ImService
from lark_oapi.api.im.v1 import (
    CreateFileRequest,
    CreateFileRequestBody,
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageReactionRequest,
    CreateMessageReactionRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    DeleteMessageReactionRequest,
    Emoji,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.model import Config
from lark_oapi.core.token.manager import TokenManager

from shared.botconfig import BotConfig
from shared.idempotency import send_uuid
from shared.ratelimits import CHAT_LIMIT_CODE, RATE_LIMIT_CODES, RESET_HEADER
from shared.results import File, Image, Reply, decode_base64, to_content
from worker.pacing import ChatTurn, Pacer

log = logging.getLogger(__name__)

API_TIMEOUT_S = 15.0
RATE_LIMIT_RETRIES = 3
"""Refusals for rate (after honouring the reset) retried in place before the send fails."""
DEFAULT_RESET_S = 1.0
"""How long a refusal without a reset header holds the chat or the app."""
FILE_TYPES = {"pdf": "pdf", "doc": "doc", "docx": "doc", "xls": "xls", "xlsx": "xls",
              "ppt": "ppt", "pptx": "ppt", "mp4": "mp4", "opus": "opus"}
"""im/v1/files `file_type` by file extension; anything else is uploaded as `stream`."""


TOKEN_INVALID_CODES = frozenset({99991661, 99991663, 99991668})
"""The tenant token was refused (missing, invalid, expired) before the SDK's cached expiry."""


def forget_tenant_token(app_id: str) -> None:
    """Drop the SDK's cached tenant token of `app_id`, so the next call fetches a fresh one.

    lark_oapi caches it process-wide under `self_tenant_token:{app_id}` until
    expire - 10 min and never clears it on 99991663 (core/token/manager.py,
    core/cache/local_cache.py); the cache has no delete, so the entry is
    overwritten as already expired.
    """
    TokenManager.cache.set(f"self_tenant_token:{app_id}", "", 0)


def reply_uuid(event_id: str) -> str:
    """The idempotency key of the (first) reply to an event (shared/idempotency.py)."""
    return send_uuid(event_id)


@dataclass(frozen=True)
class CallResult:
    """The outcome of one API call; `code` is the platform's code (0 = ok)."""

    ok: bool
    message_id: str | None = None
    code: int | None = None
    error: str | None = None
    http_status: int | None = None
    reset_s: float | None = None
    """The platform's `x-ogw-ratelimit-reset` (seconds), when it sent one."""
    key: str | None = None
    """What an upload answered (image_key / file_key) or a reaction's id."""

    @property
    def rate_limited(self) -> bool:
        return self.code in RATE_LIMIT_CODES or self.http_status == 429


@dataclass(frozen=True)
class Target:
    """Where a message goes: a reply to `reply_to`, or a new message to a receive id.

    `chat_key` is the chat the send counts against for pacing (the chat id,
    or the receive id for a user).
    """

    chat_key: str
    reply_to: str | None = None
    receive_id: str | None = None
    receive_id_type: str | None = None
    reply_in_thread: bool = False

    @classmethod
    def reply(cls, message_id: str, chat_id: str = "", in_thread: bool = False) -> "Target":
        return cls(chat_key=chat_id or message_id, reply_to=message_id,
                   reply_in_thread=in_thread)

    @classmethod
    def new(cls, receive_id: str, receive_id_type: str) -> "Target":
        return cls(chat_key=receive_id, receive_id=receive_id, receive_id_type=receive_id_type)


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
    """Sends as the bot: messages, uploads, card updates, reactions; sends and updates paced.

    A call refused for its token (TOKEN_INVALID_CODES) drops the SDK's cached
    token and is made once more with a fresh one.
    """

    def __init__(self, bot: BotConfig, threads: int = 4, pacer: Pacer | None = None) -> None:
        self._im = _im_service(bot)
        self._app_id = bot.app_id
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="im-send")
        self.pacer = pacer or Pacer()

    def close(self) -> None:
        """Stop the sender threads (calls in flight finish on their own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def config(self) -> Config:
        """The SDK config the IM calls use (domain, app credentials, timeout)."""
        return self._im.v1.message.config

    async def fetch_token(self) -> None:
        """Fetch and cache the tenant token now (connect time), so the first reply does
        not pay for it; raises what the SDK raises when the platform refuses."""
        await self.run_blocking(TokenManager.get_self_tenant_token, self.config)

    async def run_blocking(self, function, *args):
        """Run a blocking SDK call on the sender threads (never on the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    async def _run(self, method, request, key_of=None) -> CallResult:
        return await self.run_blocking(self._call_refreshing, method, request, key_of)

    def _call_refreshing(self, method, request, key_of=None) -> CallResult:
        result = self._call(method, request, key_of)
        if result.code in TOKEN_INVALID_CODES:
            log.warning("tenant token refused (code %s): fetching a fresh one and retrying once",
                        result.code)
            forget_tenant_token(self._app_id)
            result = self._call(method, request, key_of)
        return result

    async def _paced(self, chat_key: str, method, request) -> CallResult:
        """One call through the chat's and the app's windows; refusals for rate wait the
        platform's reset and retry in place, the chat still held (order kept)."""
        async with self.pacer.turn(chat_key) as turn:
            for attempt in range(RATE_LIMIT_RETRIES + 1):
                admission = await turn.admit()
                try:
                    result = await self._run(method, request)
                finally:
                    admission.done()
                if not result.rate_limited:
                    return result
                self._hold(turn, result)
                log.warning("send to %s refused for rate (code %s, attempt %d), retry in %.1f s",
                            chat_key, result.code, attempt + 1, result.reset_s or DEFAULT_RESET_S)
            return result

    @staticmethod
    def _hold(turn: ChatTurn, result: CallResult) -> None:
        seconds = result.reset_s if result.reset_s is not None else DEFAULT_RESET_S
        if result.code == CHAT_LIMIT_CODE:
            turn.hold_chat(seconds)
        else:
            turn.hold_app(seconds)

    async def send(self, target: Target, msg_type: str, content: str,
                   uuid: str | None) -> CallResult:
        """Send one message (`content` is the JSON string of `msg_type`), paced, by `uuid`."""
        if target.reply_to:
            body = ReplyMessageRequestBody.builder().msg_type(msg_type).content(content)
            if uuid:
                body = body.uuid(uuid)
            if target.reply_in_thread:
                body = body.reply_in_thread(True)
            request = (ReplyMessageRequest.builder().message_id(target.reply_to)
                       .request_body(body.build()).build())
            return await self._paced(target.chat_key, self._im.v1.message.reply, request)
        builder = (CreateMessageRequestBody.builder().receive_id(target.receive_id)
                   .msg_type(msg_type).content(content))
        if uuid:
            builder = builder.uuid(uuid)
        request = (CreateMessageRequest.builder().receive_id_type(target.receive_id_type)
                   .request_body(builder.build()).build())
        return await self._paced(target.chat_key, self._im.v1.message.create, request)

    async def send_reply(self, target: Target, reply: Reply, uuid: str | None) -> CallResult:
        """Send one handler reply; an image or file is uploaded first, then sent by its key."""
        media_key = None
        if isinstance(reply, Image | File):
            uploaded = await self.upload(reply)
            if not uploaded.ok:
                return uploaded
            media_key = uploaded.key
        msg_type, content = to_content(reply, media_key)
        return await self.send(target, msg_type, content, uuid)

    async def upload(self, reply: Image | File) -> CallResult:
        """Upload an image (im/v1/images, type message) or a file (im/v1/files): `key` is its key.

        Not paced: uploads are not messages. Not idempotent either, which is
        harmless: only the message send that uses the key is shown.
        """
        if isinstance(reply, Image):
            body = (CreateImageRequestBody.builder().image_type("message")
                    .image(io.BytesIO(decode_base64(reply.image.base64))).build())
            request = CreateImageRequest.builder().request_body(body).build()
            return await self._run(self._im.v1.image.create, request,
                                   lambda data: data.image_key)
        name = reply.file.name
        file_type = FILE_TYPES.get(name.rpartition(".")[2].lower(), "stream")
        body = (CreateFileRequestBody.builder().file_type(file_type).file_name(name)
                .file(io.BytesIO(decode_base64(reply.file.base64))).build())
        request = CreateFileRequest.builder().request_body(body).build()
        return await self._run(self._im.v1.file.create, request, lambda data: data.file_key)

    async def update_card(self, message_id: str, card: dict, chat_key: str) -> CallResult:
        """Replace a sent card's content (PATCH im/v1/messages/{id}), paced with the chat."""
        body = PatchMessageRequestBody.builder().content(json.dumps(card, ensure_ascii=False))
        request = (PatchMessageRequest.builder().message_id(message_id)
                   .request_body(body.build()).build())
        result = await self._paced(chat_key, self._im.v1.message.patch, request)
        if result.ok:
            return CallResult(True, message_id=message_id, code=0, http_status=result.http_status)
        return result

    async def add_reaction(self, message_id: str, emoji_type: str) -> CallResult:
        """React to a message (im/v1/messages/{id}/reactions): `key` is the reaction id."""
        body = (CreateMessageReactionRequestBody.builder()
                .reaction_type(Emoji.builder().emoji_type(emoji_type).build()).build())
        request = (CreateMessageReactionRequest.builder().message_id(message_id)
                   .request_body(body).build())
        return await self._run(self._im.v1.message_reaction.create, request,
                               lambda data: data.reaction_id)

    async def remove_reaction(self, message_id: str, reaction_id: str) -> CallResult:
        request = (DeleteMessageReactionRequest.builder().message_id(message_id)
                   .reaction_id(reaction_id).build())
        return await self._run(self._im.v1.message_reaction.delete, request)

    async def reply(self, message_id: str, text: str, uuid: str, chat_id: str = "") -> CallResult:
        """Reply to a message with text, idempotent by `uuid`."""
        content = json.dumps({"text": text}, ensure_ascii=False)
        return await self.send(Target.reply(message_id, chat_id), "text", content, uuid)

    async def create(
        self, receive_id: str, receive_id_type: str, text: str, uuid: str | None
    ) -> CallResult:
        """Send a new text message to a user or chat."""
        content = json.dumps({"text": text}, ensure_ascii=False)
        return await self.send(Target.new(receive_id, receive_id_type), "text", content, uuid)

    @staticmethod
    def _call(method, request, key_of=None) -> CallResult:
        try:
            response = method(request)
        except Exception as exc:
            code = getattr(exc, "code", None)
            return CallResult(False, code=code if isinstance(code, int) else None,
                              error=f"{type(exc).__name__}: {exc}")
        raw = response.raw
        status = raw.status_code if raw is not None else None
        if not response.success():
            return CallResult(False, code=response.code, error=response.msg, http_status=status,
                              reset_s=_reset_seconds(raw.headers if raw is not None else {}))
        data = getattr(response, "data", None)
        message_id = getattr(data, "message_id", None) if data is not None else None
        key = key_of(data) if key_of is not None and data is not None else None
        return CallResult(True, message_id=message_id, code=0, http_status=status, key=key)


def _reset_seconds(headers: dict[str, str]) -> float | None:
    """The reset header's seconds (case-insensitive name), None when absent or unreadable."""
    for name, value in headers.items():
        if name.lower() == RESET_HEADER:
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None
