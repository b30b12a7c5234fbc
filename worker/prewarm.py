"""The zygote runs one whole worker session before it freezes, so workers share its lazy state.

A worker forked from the zygote copies every shared page it writes. Much of what its start
writes is first-use work: lazy imports and caches (ssl, urllib3/requests adapters,
websockets, json, encodings, `re`), CPython 3.11 quickening each function it runs (the
bytecode is rewritten in place on the first calls), the SDK's lazily built objects. Done once
here, before gc.freeze(), all of it is shared by every worker instead of redone in each.

So this runs `worker.main._run` itself, the real path (logging set-up, proxy, pooled HTTP
session, control channel, spool and consumer, endpoint discovery over HTTPS, the WebSocket
handshake over TLS, the tenant token, one event echoed back), against a loopback stand-in
in a thread: the simulator (`simulator/`) with a throwaway CA, and a ROUTER that plays the
supervisor, answers nothing but a Stop once the echo came back. Everything is torn down
before returning (no thread, socket or file left: the zygote forks right after), and the
process-wide state the session sets (logging, environment, the SDK's module attributes) is
put back. A failure is logged and never stops the zygote: workers then only share less.
"""

import asyncio
import gc
import logging
import os
import ssl
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import lark_oapi.core.http.transport as sdk_transport
import lark_oapi.ws.client as sdk_client
import zmq
import zmq.asyncio

from shared import messages
from shared.botconfig import BotConfig
from shared.logs import configure_logging
from shared.messages import StateChanged, Stop, WorkerSpec
from shared.states import ConnState

logger = logging.getLogger(__name__)

DEADLINE_S = 20.0
"""The whole warm-up, bounded: a stand-in that hangs must not keep the zygote from serving."""
APP_ID = "cli_zygote_warmup"
APP_SECRET = "wu"
"""Shorter than the log redactor's minimum: the warm-up adds no secret to the zygote's."""


def run() -> bool:
    """Run one worker session against the loopback stand-in; True if it echoed an event.

    Never raises. Call in the zygote before gc.freeze() (worker/preload.py).
    """
    began = time.monotonic()
    fds = set(os.listdir("/proc/self/fd"))
    saved = _ProcessState()
    try:
        with tempfile.TemporaryDirectory(prefix="larkfleet-warmup-") as work:
            echoed = _warm(Path(work))
    except Exception:
        logger.exception("zygote warm-up failed; workers share less of their start")
        echoed = False
    finally:
        saved.restore()
        gc.collect()  # the session's objects, and the sockets they still hold
    left_open = set(os.listdir("/proc/self/fd")) - fds
    if left_open:
        logger.error("zygote warm-up left %d file descriptors open", len(left_open))
    leftovers = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if leftovers:
        logger.error("zygote warm-up left threads running: %s", leftovers)
    logger.info("zygote warm-up %s in %.2f s", "done" if echoed else "incomplete",
                time.monotonic() - began)
    return echoed


class _ProcessState:
    """What `worker.main._run` changes process-wide, to be put back after the warm-up."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.loop = sdk_client.loop
        self.current_loop = _current_loop()
        self.transport_requests = sdk_transport.requests
        self.ws_requests = sdk_client.requests
        self.websockets = sdk_client.websockets
        self.ws_connect_kwargs = sdk_client._ws_connect_kwargs
        self.sdk_logger_level = logging.getLogger("Lark").level
        self.root_level = logging.getLogger().level

    def restore(self) -> None:
        for pooled in {sdk_transport.requests, sdk_client.requests}:
            if pooled is not self.transport_requests and hasattr(pooled, "close"):
                pooled.close()
        sdk_transport.requests = self.transport_requests
        sdk_client.requests = self.ws_requests
        sdk_client.websockets = self.websockets
        sdk_client._ws_connect_kwargs = self.ws_connect_kwargs
        if sdk_client.loop is not self.loop:
            _close_loop(sdk_client.loop)
            sdk_client.loop = self.loop
        asyncio.set_event_loop(self.current_loop)
        configure_logging(None, logging.getLevelName(self.root_level), stderr=False)
        logging.getLogger("Lark").setLevel(self.sdk_logger_level)
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    """The main thread's current loop (the SDK set one when imported), or None."""
    try:
        return asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on `loop` (the SDK client's cache cron), join its executor
    threads (endpoint discovery runs in one), then close it, as asyncio.run does."""
    if loop.is_closed():
        return
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _warm(work: Path) -> bool:
    from worker.main import _run

    sdk_loop = sdk_client.loop
    stand_in = _StandIn(work)
    stand_in.start()
    try:
        if not stand_in.ready.wait(DEADLINE_S) or stand_in.error is not None:
            raise RuntimeError(f"stand-in did not start: {stand_in.error}")
        os.environ.update(stand_in.client_env)
        spec = WorkerSpec(
            bot=BotConfig(id="bot_zygote_warmup", name="warm-up", app_id=APP_ID,
                          app_secret=APP_SECRET, domain=stand_in.url),
            incarnation=1,
            data_dir=str(work / "data"),
            control_endpoint=stand_in.endpoint,
            supervisor_timeout=DEADLINE_S,
            endpoint_timeout=DEADLINE_S / 2,
            proxy="direct",
        )
        _run(spec)
    finally:
        if sdk_client.loop is not sdk_loop:  # the worker's own loop, set by _run
            _close_loop(sdk_client.loop)
        stand_in.stop.set()
        stand_in.join(DEADLINE_S)
        _join_threads(time.monotonic() + 5)
    if stand_in.error is not None:
        raise RuntimeError(f"stand-in failed: {stand_in.error}")
    return stand_in.echoed


def _join_threads(deadline: float) -> None:
    """Wait for threads already told to end (the reply senders' executor)."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


class _StandIn(threading.Thread):
    """The simulator over TLS and a supervisor ROUTER, on a loop of their own."""

    def __init__(self, work: Path) -> None:
        super().__init__(name="zygote-warmup-stand-in", daemon=True)
        self.work = work
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.url = ""
        self.endpoint = f"ipc://{work / 'control.sock'}"
        self.client_env: dict[str, str] = {}
        self.echoed = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # seen by the caller, which logs it
            self.error = error
            self.ready.set()

    async def _serve(self) -> None:
        from simulator import server, tls

        runner, port = await server.start("127.0.0.1", 0, tls_dir=self.work / "tls")
        ctx = zmq.asyncio.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        ca = ssl.create_default_context(cafile=str(self.work / "tls" / tls.CA_FILE))
        try:
            router.bind(self.endpoint)
            self.url = f"https://127.0.0.1:{port}"
            async with aiohttp.ClientSession(self.url, connector=aiohttp.TCPConnector(
                    ssl=ca)) as control:
                await _call(control, "/_sim/apps", {"appId": APP_ID, "appSecret": APP_SECRET})
                self.client_env = tls.client_env(self.work / "tls")
                self.ready.set()
                await asyncio.wait_for(self._drive(router, control), DEADLINE_S)
        finally:
            router.close(0)
            ctx.term()
            await runner.cleanup()

    async def _drive(self, router: zmq.asyncio.Socket, control: aiohttp.ClientSession) -> None:
        """Wait for `connected`, push one event, wait for its echo, then Stop the worker."""
        while True:
            identity, frame = await router.recv_multipart()
            message = messages.decode_from_worker(frame)
            if isinstance(message, StateChanged) and message.state == ConnState.CONNECTED:
                break
        await _call(control, f"/_sim/apps/{APP_ID}/events", {"text": "warm-up"})
        while not self.echoed and not self.stop.is_set():
            self.echoed = bool(await _call(control, f"/_sim/apps/{APP_ID}/sent"))
            await asyncio.sleep(0.01)
        await router.send_multipart([identity, messages.encode(Stop(grace=2.0))])
        while not self.stop.is_set():
            await asyncio.sleep(0.01)


async def _call(control: aiohttp.ClientSession, path: str, body: object = None) -> object:
    """One call to the simulator's control API (simulator/control.py); raises on an error."""
    method = "GET" if body is None else "POST"
    async with control.request(method, path, json=body) as response:
        response.raise_for_status()
        return await response.json()
