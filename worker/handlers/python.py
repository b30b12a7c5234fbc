"""The python handler: call `package.module:function` with the parsed message.

A plain function runs in a thread (it may block); a coroutine function runs on
the loop. It returns a handler result (shared/results.py: a string, a dict of
that shape, a Reply struct, `{"messages": [...]}`, or None). A function that
yields text (a generator, or an async generator) streams: each piece is
appended to one card that is updated as it grows (worker/streaming.py).
A card click (worker/cardaction.py) calls the same function with a
CardAction; it answers with a CardActionResult-shaped dict or None. The
threads are the handler's own: slow user code never starves the loop's
default executor, which the connection side needs for endpoint discovery.
"""

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.botconfig import PythonHandler as PythonSpec
from shared.pytarget import TargetRefused, check_target
from shared.results import CardActionResult, ResultError, parse_card_action_result, parse_result
from worker.cardaction import CardAction
from worker.content import Message
from worker.errors import EventError
from worker.handlers.base import Answer, Handler

_DONE = object()


def resolve_target(
    target: str, prefixes: tuple[str, ...] = (), trusted: bool = True
) -> Callable[[Message], Any]:
    """Import `module:function` if the owner may name it; a refused target is permanent."""
    try:
        return check_target(target, prefixes, trusted)
    except TargetRefused as exc:
        raise EventError(str(exc), permanent=True) from None


class PythonHandler(Handler):
    """Resolves the target on first use, so a bad target dead-letters instead of crashing."""

    def __init__(
        self, spec: PythonSpec, threads: int = 8,
        prefixes: tuple[str, ...] = (), trusted: bool = True,
    ) -> None:
        """`prefixes`/`trusted`: the operator's python_modules and whether the owner is admin."""
        self._target = spec.target
        self._prefixes = prefixes
        self._trusted = trusted
        self._function: Callable[[Message], Any] | None = None
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="python-handler")

    async def _call(self, argument: Message | CardAction) -> Any:
        """Run the target; a generator comes back as an async iterator of its pieces."""
        if self._function is None:
            self._function = resolve_target(self._target, self._prefixes, self._trusted)
        function = self._function
        if inspect.isasyncgenfunction(function):
            return function(argument)
        if inspect.iscoroutinefunction(function):
            return await function(argument)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, function, argument)
        if inspect.isawaitable(result):
            result = await result
        if inspect.isgenerator(result):
            return self._in_thread(result)
        return result

    async def _in_thread(self, pieces: Iterator[Any]) -> AsyncIterator[Any]:
        """A sync generator's pieces, each one produced in the handler's threads."""
        loop = asyncio.get_running_loop()
        while True:
            piece = await loop.run_in_executor(self._executor, next, pieces, _DONE)
            if piece is _DONE:
                return
            yield piece

    async def handle(self, message: Message) -> Answer:
        result = await self._call(message)
        if hasattr(result, "__aiter__"):
            return _texts(result)
        try:
            return parse_result(result)
        except ResultError as exc:
            raise EventError(f"python target {self._target} returned {exc}",
                             permanent=True) from None

    async def card_action(self, action: CardAction) -> CardActionResult | None:
        result = await self._call(action)
        try:
            return parse_card_action_result(result)
        except ResultError as exc:
            raise EventError(f"python target {self._target} answered a card action with {exc}",
                             permanent=True) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _texts(pieces: AsyncIterator[Any]) -> AsyncIterator[str]:
    """A generator's pieces as text; anything else it yields is a permanent error."""
    async for piece in pieces:
        if not isinstance(piece, str):
            raise EventError(f"a streaming python target yielded {type(piece).__name__}, not str",
                             permanent=True)
        yield piece
