"""The bot's own open_id, from the platform (`GET /open-apis/bot/v3/info`).

The receive event never says which mention is the bot; comparing names or
taking the first mention misfires (docs/event-path.md). The bot info API
answers `{"code": 0, "msg": "ok", "bot": {"open_id": "ou_...", "app_name", ...}}`
with the tenant token (Feishu server doc "获取机器人信息", bot/v3/info). It is
asked once per worker and cached; a failed call is not cached, so the next
event that needs the identity asks again.
"""

import json
import logging

from lark_oapi.core.enum import AccessTokenType, HttpMethod
from lark_oapi.core.http import Transport
from lark_oapi.core.model import BaseRequest, RequestOption
from lark_oapi.core.token import verify

from worker.errors import EventError
from worker.replies import TOKEN_INVALID_CODES, Messenger, forget_tenant_token

log = logging.getLogger(__name__)

BOT_INFO_URI = "/open-apis/bot/v3/info"


class BotIdentity:
    """Knows the bot's open_id once `open_id()` has succeeded."""

    def __init__(self, messenger: Messenger, app_id: str) -> None:
        self._messenger = messenger
        self._app_id = app_id
        self.known: str | None = None

    async def open_id(self) -> str:
        """The cached open_id, fetched first if needed; raises EventError (retried later)."""
        if self.known is None:
            self.known = await self._messenger.run_blocking(self._fetch)
            log.info("the bot's own open_id is %s", self.known)
        return self.known

    def _fetch(self) -> str:
        code, msg, open_id = self._ask()
        if code in TOKEN_INVALID_CODES:
            forget_tenant_token(self._app_id)
            code, msg, open_id = self._ask()
        if code != 0 or not open_id:
            raise EventError(f"bot info ({BOT_INFO_URI}) failed: code {code}: {msg}")
        return open_id

    def _ask(self) -> tuple[int | None, str, str]:
        request = (
            BaseRequest.builder()
            .http_method(HttpMethod.GET)
            .uri(BOT_INFO_URI)
            .token_types({AccessTokenType.TENANT})
            .build()
        )
        option = RequestOption()
        try:
            verify(self._messenger.config, request, option)  # fetches or reuses the token
            raw = Transport.execute(self._messenger.config, request, option)
            answer = json.loads(raw.content or b"{}")
        except Exception as exc:
            code = getattr(exc, "code", None)
            return (code if isinstance(code, int) else None), f"{type(exc).__name__}: {exc}", ""
        if not isinstance(answer, dict):
            return None, "bot info answer is not a JSON object", ""
        bot = answer.get("bot") if isinstance(answer.get("bot"), dict) else {}
        open_id = bot.get("open_id") if isinstance(bot.get("open_id"), str) else ""
        return answer.get("code"), str(answer.get("msg", "")), open_id
