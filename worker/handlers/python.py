"""The python handler: call `package.module:function` with the parsed message.

A plain function runs in a thread (it may block); a coroutine function runs on
the loop. It returns the reply text or None. The threads are the handler's
own: slow user code never starves the loop's default executor, which the
connection side needs for endpoint discovery.
"""

import asyncio
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.botconfig import PythonHandler as PythonSpec
from worker.content import Message
from worker.errors import EventError
from worker.handlers.base import Handler


def resolve_target(target: str) -> Callable[[Message], Any]:
    """Import `module:function`; a bad target is a permanent error."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise EventError(f"python target {target!r} is not 'module:function'", permanent=True)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise EventError(f"python target {target!r}: {exc}", permanent=True) from None
    if not callable(obj):
        raise EventError(f"python target {target!r} is not callable", permanent=True)
    return obj


class PythonHandler(Handler):
    """Resolves the target on first use, so a bad target dead-letters instead of crashing."""

    def __init__(self, spec: PythonSpec, threads: int = 8) -> None:
        self._target = spec.target
        self._function: Callable[[Message], Any] | None = None
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="python-handler")

    async def handle(self, message: Message) -> str | None:
        if self._function is None:
            self._function = resolve_target(self._target)
        function = self._function
        if inspect.iscoroutinefunction(function):
            result = await function(message)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, function, message)
            if inspect.isawaitable(result):
                result = await result
        if result is not None and not isinstance(result, str):
            raise EventError(
                f"python target returned {type(result).__name__}, not str or None", permanent=True
            )
        return result or None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
