"""One platform long connection, driven by hand instead of `ws.Client.start()`.

`start()` never returns, has no stop, retries forever on its own and can die
silently (feishu-protocol.md 1.8). The supervisor owns retry policy, so this
wrapper opens exactly one connection and ends as soon as it is lost: the
receive loop ends, or the platform falls silent for `silence_pings` ping
intervals. Endpoint discovery, a blocking POST without a timeout in the SDK,
runs in a thread under a deadline.

The SDK schedules its tasks on its module-level `loop`; the caller must have
pointed `lark_oapi.ws.client.loop` at the running loop first (worker/main.py).
"""

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import lark_oapi.ws.client as sdk
from lark_oapi.core.enum import LogLevel
from lark_oapi.ws.enum import MessageType
from lark_oapi.ws.exception import ClientException, ServerException
from lark_oapi.ws.pb.pbbp2_pb2 import Frame

from shared.botconfig import BotConfig
from worker.fragments import replace_sdk_cache

logger = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL = 120.0
"""The SDK's own default, used if the platform sent an unusable PingInterval."""

KEEPALIVE_S = 60.0
"""websockets' own keepalive ping period on the platform connection (its default is 20 s;
the SDK keeps the default). Each keepalive is two wakes of an idle worker (the ping, then
the pong): at 20 s that was 0.1 wakes a second per idle worker, the largest share left
once the liveness beat slowed (bench/NOTES.md, "Busy bot among 1,000 idle"). At 60 s, with
websockets' 20 s ping timeout, a dead TCP peer is noticed within 80 s instead of 40 s;
the silence watch below (3 platform ping intervals) stays the net behind it."""

CLOSE_TIMEOUT = 2.0
"""A close handshake with a silent platform must not eat the stop grace."""


class ConnectionSilent(Exception):
    """No frame at all (not even a pong) for too long: a blackholed platform."""


@dataclass(frozen=True)
class Failure:
    """Why a connection could not be opened or was lost, as the supervisor needs it."""

    permanent: bool
    message: str
    code: int | None = None


def classify(error: BaseException) -> Failure:
    """Only the platform's explicit refusals are permanent; everything else is worth a retry.

    The SDK raises ClientException for refusals it will not retry itself: an
    endpoint code outside {0, 1, 1000040343} (bad credentials), handshake 514
    with 1000040350 (connection limit; `code` is then 514) and 403 (forbidden).
    """
    if isinstance(error, ClientException):
        return Failure(permanent=True, message=str(error.args[0]), code=error.code)
    if isinstance(error, ServerException):
        return Failure(permanent=False, message=str(error.args[0]), code=error.code)
    return Failure(permanent=False, message=f"{type(error).__name__}: {error}")


def _header(frame: Frame, key: str) -> str | None:
    for header in frame.headers:
        if header.key == key:
            return header.value
    return None


def _sdk_level(level: str) -> LogLevel:
    """The SDK's own enum for a logging level name; the logging config filters anyway."""
    value = logging.getLevelName(level.upper())
    return LogLevel(value) if value in {m.value for m in LogLevel} else LogLevel.INFO


class LarkConnection(sdk.Client):
    """ws.Client with auto_reconnect off, a bounded discovery and a liveness watch."""

    def __init__(
        self,
        bot: BotConfig,
        event_handler: object,
        *,
        endpoint_timeout: float,
        silence_pings: int,
        log_level: str,
    ) -> None:
        super().__init__(
            bot.app_id,
            bot.app_secret,
            log_level=_sdk_level(log_level),
            event_handler=event_handler,
            domain=bot.base_url,
            auto_reconnect=False,
        )
        replace_sdk_cache(self)  # no 30 s timer per worker (worker/fragments.py)
        self._endpoint_timeout = endpoint_timeout
        self._silence_pings = silence_pings
        self._discovered_url: str | None = None
        self._last_frame_mono = time.monotonic()
        self._first_pong = asyncio.Event()
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def serve(self, on_connected: Callable[[], None]) -> None:
        """Open the connection and hold it; raises the reason when it is lost.

        `on_connected` is called once the handshake succeeded and the first
        pong arrived, never before.
        """
        await self._connect()
        self._last_frame_mono = time.monotonic()
        tasks = [
            asyncio.ensure_future(self._ping_loop()),
            asyncio.ensure_future(self._watch_silence()),
        ]
        pong = asyncio.ensure_future(self._first_pong.wait())
        try:
            await asyncio.wait({pong, self._ended}, return_when=asyncio.FIRST_COMPLETED)
            if not self._ended.done():
                on_connected()
            await self._ended
        finally:
            for task in (pong, *tasks):
                task.cancel()

    async def close(self) -> None:
        """Close the socket, bounded: the receive loop then ends and `serve` raises."""
        try:
            await asyncio.wait_for(self._disconnect(), CLOSE_TIMEOUT)
        except (TimeoutError, OSError) as error:
            logger.warning("closing the connection: %s", error)

    def ping_interval(self) -> float:
        """The current interval (the platform's ClientConfig can change it mid-session)."""
        value = self._ping_interval
        if isinstance(value, int | float) and value > 0:
            return float(value)
        return DEFAULT_PING_INTERVAL

    async def _connect(self) -> None:
        """Discovery in a thread under a deadline, then the SDK's own handshake."""
        discover = super()._get_conn_url
        try:
            url = await asyncio.wait_for(asyncio.to_thread(discover), self._endpoint_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"endpoint discovery timed out after {self._endpoint_timeout:g} s"
            ) from None
        self._discovered_url = url
        try:
            await super()._connect()
        finally:
            self._discovered_url = None

    def _get_conn_url(self) -> str:
        """The URL `_connect` discovered; the SDK's blocking POST never runs on the loop."""
        if self._discovered_url is None:
            raise RuntimeError("endpoint discovery runs only through _connect")
        return self._discovered_url

    async def _receive_message_loop(self) -> None:
        """With auto_reconnect off the SDK re-raises the loss here; hand it to `serve`."""
        try:
            await super()._receive_message_loop()
        except Exception as error:
            self._end(error)

    async def _handle_message(self, msg: bytes) -> None:
        self._last_frame_mono = time.monotonic()
        await super()._handle_message(msg)

    async def _handle_data_frame(self, frame: Frame) -> None:
        """Callbacks (card actions) are answered here, off the SDK's synchronous path.

        The SDK calls the handler synchronously and ACKs with its return value
        (ws/client.py `_handle_data_frame`), which would leave no way to await a
        handler under a deadline. A single-part event frame whose payload is a
        callback is answered by `answer_callback` and ACKed exactly as the SDK
        would (same frame, `biz_rt` header, payload `{"code": 200, "data":
        base64(JSON)}`); everything else goes through the SDK unchanged.
        Old-style `type=card` frames are dropped by the SDK without an ACK.
        """
        handler = self._event_handler
        if (not hasattr(handler, "answer_callback") or _header(frame, "type") != "event"
                or _header(frame, "sum") != "1" or not handler.is_callback(frame.payload)):
            await super()._handle_data_frame(frame)
            return
        started = time.monotonic()
        try:
            answer = await handler.answer_callback(frame.payload)
            response: dict[str, object] = {"code": 200}
            if answer is not None:
                data = json.dumps(answer, ensure_ascii=False).encode()
                response["data"] = base64.b64encode(data).decode()
            rt = frame.headers.add()
            rt.key, rt.value = "biz_rt", str(int((time.monotonic() - started) * 1000))
        except Exception:
            logger.exception("answering a callback failed")
            response = {"code": 500}
        frame.payload = json.dumps(response).encode()
        await self._write_message(frame.SerializeToString())

    async def _handle_control_frame(self, frame: Frame) -> None:
        await super()._handle_control_frame(frame)
        if any(h.key == "type" and h.value == MessageType.PONG.value for h in frame.headers):
            self._first_pong.set()

    async def _watch_silence(self) -> None:
        """Sleep until the silence deadline; each frame that arrived in between moves it."""
        while True:
            limit = self._silence_pings * self.ping_interval()
            quiet = time.monotonic() - self._last_frame_mono
            if quiet >= limit:
                self._end(ConnectionSilent(f"no frame from the platform for {quiet:.1f} s"))
                return
            await asyncio.sleep(limit - quiet)

    def _end(self, reason: BaseException) -> None:
        if not self._ended.done():
            self._ended.set_exception(reason)
