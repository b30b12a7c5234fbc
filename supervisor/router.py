"""The supervisor's end of the control channel: one ZeroMQ ROUTER socket.

Each worker connects a DEALER whose identity is "<bot id>:<incarnation>".
Frames that do not decode are logged and dropped: a confused worker can never
take the supervisor down.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from shared import messages
from shared.messages import FromWorker

logger = logging.getLogger(__name__)

Handler = Callable[[bytes, FromWorker], None]


class Router:
    def __init__(self, socket_path: Path) -> None:
        self._ctx = zmq.asyncio.Context()
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 10_000)
        self._socket.setsockopt(zmq.RCVHWM, 100_000)
        socket_path.unlink(missing_ok=True)
        self._socket.bind(f"ipc://{socket_path}")
        socket_path.chmod(0o600)

    async def serve(self, handle: Handler) -> None:
        """Receive forever, handing each decoded message to `handle`."""
        while True:
            frames = await self._socket.recv_multipart()
            if len(frames) != 2:
                logger.warning("dropped a message with %d frames", len(frames))
                continue
            identity, payload = frames
            try:
                message = messages.decode_from_worker(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                logger.warning("dropped a malformed message from %r: %s", identity, error)
                continue
            handle(identity, message)

    def send(self, identity: bytes, message: msgspec.Struct) -> None:
        """Queue a message for one worker; never blocks (drops if that peer is gone)."""
        try:
            self._socket.send_multipart([identity, messages.encode(message)], zmq.NOBLOCK)
        except zmq.Again:
            logger.warning("control queue full for %r; message dropped", identity)

    def close(self) -> None:
        self._socket.close(0)
        self._ctx.term()
