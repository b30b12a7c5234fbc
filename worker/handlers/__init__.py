"""Handlers: build the one the bot's config names."""

from shared import botconfig
from worker.handlers.base import Handler
from worker.handlers.echo import EchoHandler
from worker.handlers.forward import ForwardHandler
from worker.handlers.http import HttpSession
from worker.handlers.openai import OpenAIHandler
from worker.handlers.python import PythonHandler
from worker.spool import Spool

__all__ = ["Handler", "HttpSession", "build_handler"]


def build_handler(
    spec: botconfig.HandlerSpec, http: HttpSession, spool: Spool, threads: int = 8
) -> Handler:
    """The handler object for a bot's handler spec."""
    if isinstance(spec, botconfig.ForwardHandler):
        return ForwardHandler(spec, http)
    if isinstance(spec, botconfig.PythonHandler):
        return PythonHandler(spec, threads)
    if isinstance(spec, botconfig.OpenAIHandler):
        return OpenAIHandler(spec, http, spool)
    return EchoHandler()
