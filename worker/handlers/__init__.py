"""Handlers: build the one the bot's config names."""

from shared import botconfig
from shared.security import SecurityPolicy
from worker.handlers.base import Handler
from worker.handlers.echo import EchoHandler
from worker.handlers.forward import ForwardHandler
from worker.handlers.http import HttpSession
from worker.handlers.openai import OpenAIHandler
from worker.handlers.python import PythonHandler
from worker.spool import Spool

__all__ = ["Handler", "HttpSession", "build_handler"]


def build_handler(
    spec: botconfig.HandlerSpec, http: HttpSession, spool: Spool, threads: int = 8,
    policy: SecurityPolicy | None = None,
) -> Handler:
    """The handler object for a bot's handler spec; `policy` None trusts the target."""
    if isinstance(spec, botconfig.ForwardHandler):
        return ForwardHandler(spec, http)
    if isinstance(spec, botconfig.PythonHandler):
        if policy is None:
            return PythonHandler(spec, threads)
        return PythonHandler(spec, threads, policy.python_modules, policy.trusted)
    if isinstance(spec, botconfig.OpenAIHandler):
        return OpenAIHandler(spec, http, spool)
    return EchoHandler()
