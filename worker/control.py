"""The worker's end of the control channel: one ZeroMQ DEALER to the supervisor's ROUTER.

The identity carries bot id and incarnation, so the supervisor can tell a stale
worker's words from the current one's. Anything that does not decode is logged
and dropped here: a confused peer must never take a worker down.
"""

import logging

import msgspec
import zmq
import zmq.asyncio

from shared import messages
from shared.messages import ToWorker, worker_identity

logger = logging.getLogger(__name__)

LINGER_MS = 500
"""On close, how long queued messages (the last StateChanged) may take to leave."""


class ControlChannel:
    def __init__(self, endpoint: str, bot_id: str, incarnation: int) -> None:
        self._ctx = zmq.asyncio.Context()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.IDENTITY, worker_identity(bot_id, incarnation))
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        self._socket.setsockopt(zmq.SNDHWM, 1_000)
        self._socket.connect(endpoint)

    def send(self, message: msgspec.Struct) -> None:
        """Queue a message; never blocks (a full queue means the supervisor is gone anyway)."""
        try:
            self._socket.send(messages.encode(message), zmq.NOBLOCK)
        except zmq.Again:
            logger.warning("control queue full; %s dropped", type(message).__name__)

    async def receive(self) -> ToWorker:
        """The next well-formed message from the supervisor; malformed ones are dropped."""
        while True:
            frames = await self._socket.recv_multipart()
            if len(frames) != 1:
                logger.warning("dropped a control message with %d frames", len(frames))
                continue
            try:
                return messages.decode_to_worker(frames[0])
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                logger.warning("dropped a malformed control message: %s", error)

    def close(self) -> None:
        """Flush what is queued (bounded by LINGER_MS) and release the socket."""
        self._socket.close(LINGER_MS)
        self._ctx.term()
