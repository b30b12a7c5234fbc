"""Test helpers: an in-process simulator thread, a thread-hosted SDK ws client, and
polling with a deadline instead of sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from simulator.server import start

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", interval: float = 0.05
) -> T:
    """Poll until `predicate()` is truthy and return its value; tests synchronise on
    observable state, never on sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s: {what or predicate}")
        time.sleep(interval)


class SimulatorThread:
    """The simulator on 127.0.0.1 (ephemeral port) in a daemon thread with its own loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls_dir: Path | None = None,
                 ) -> None:
        """With `tls_dir`, serve https/wss with a throwaway CA there (`simulator/tls.py`)."""
        self.host = host
        self.port = port
        self.tls_dir = tls_dir
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                started = start(self.host, self.port, self.tls_dir)
                self._runner, self.port = self._loop.run_until_complete(started)
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="larkfleet-sim", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        scheme = "https" if self.tls_dir is not None else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            fut.result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WsClientThread:
    """Runs a real `lark_oapi.ws.Client` in a thread of its own: the SDK's module-level
    loop is swapped for a fresh one first (feishu-protocol.md 1.8), and stop() cancels
    everything on it since 1.7.5 has no stop()."""

    def __init__(
        self, app_id: str, app_secret: str, domain: str, event_handler: Any, **kwargs: Any
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.domain = domain
        self.event_handler = event_handler
        self.kwargs = kwargs
        self.error: BaseException | None = None
        self.client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"ws-{app_id}", daemon=True)
        self._built = threading.Event()

    def _run(self) -> None:
        import lark_oapi as lark
        import lark_oapi.ws.client as ws_client

        self._loop = asyncio.new_event_loop()
        ws_client.loop = self._loop
        asyncio.set_event_loop(self._loop)
        try:
            self.client = lark.ws.Client(
                self.app_id,
                self.app_secret,
                event_handler=self.event_handler,
                domain=self.domain,
                **self.kwargs,
            )
        except BaseException as exc:
            self.error = exc
            self._built.set()
            return
        self._built.set()
        try:
            self.client.start()
        except BaseException as exc:
            self.error = exc
        self._reap()

    def _reap(self) -> None:
        """Let cancelled SDK tasks finish on their loop so none is destroyed while pending."""
        loop = self._loop
        if loop is None:
            return
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def start(self) -> WsClientThread:
        self._thread.start()
        self._built.wait(10)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return

        async def shutdown() -> None:
            self.client._auto_reconnect = False
            conn = getattr(self.client, "_conn", None)
            if conn is not None:
                await conn.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()

        with contextlib.suppress(RuntimeError, TimeoutError, asyncio.CancelledError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        self._thread.join(timeout)

    def __enter__(self) -> WsClientThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
