"""The operator's rules a bot must pass before it is stored (create and patch).

Each refusal is a 400 naming the field, with the reason: a webhook-mode bot
without encryptKey or verificationToken, a python target the owner may not
name or that does not import, a handler URL the URL policy refuses. The
rules are judged for the bot's owner (an admin's bot is trusted), the same
way the worker judges them again at run time (shared/security.py).
"""

import asyncio

from aiohttp import web

from api.errors import ApiError
from api.keys import SECURITY
from shared.botconfig import BotConfig, ForwardHandler, OpenAIHandler, PythonHandler
from shared.pytarget import TargetRefused, check_target
from shared.security import WEBHOOK_AUTH_REQUIRED
from shared.urlpolicy import UrlRefused

IMPORT_TIMEOUT = 10.0
"""Bound on importing a python target at create/patch (its import may be slow)."""


def _invalid(message: str, field: str) -> ApiError:
    return ApiError(400, f"invalid request: {message} - at `{field}`", "invalid_field")


async def check_bot(
    request: web.Request, config: BotConfig, trusted: bool, handler_changed: bool = True
) -> None:
    """Raise a 400 ApiError if `config` breaks a rule; `trusted`: the owner is an admin.

    `handler_changed` False skips the handler checks (a patch that leaves the handler).
    """
    if config.webhook_unauthenticated:
        raise _invalid(WEBHOOK_AUTH_REQUIRED, "$.verificationToken")
    if not handler_changed:
        return
    policy = request.app[SECURITY].for_owner(trusted)
    handler = config.handler
    if isinstance(handler, PythonHandler):
        try:
            async with asyncio.timeout(IMPORT_TIMEOUT):
                await asyncio.to_thread(
                    check_target, handler.target, policy.python_modules, policy.trusted
                )
        except TargetRefused as error:
            raise _invalid(str(error), "$.handler.target") from error
        except TimeoutError as error:
            message = f"importing {handler.target!r} took over {IMPORT_TIMEOUT:.0f} s"
            raise _invalid(message, "$.handler.target") from error
    elif isinstance(handler, ForwardHandler | OpenAIHandler):
        url, field = (
            (handler.url, "$.handler.url") if isinstance(handler, ForwardHandler)
            else (handler.base_url, "$.handler.baseUrl")
        )
        try:
            await policy.urls.check_resolved(url)
        except UrlRefused as error:
            raise _invalid(f"refused by the operator's URL policy: {error}", field) from error
