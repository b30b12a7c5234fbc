"""The event path of one bot: spool, consumer, handler, replies (architecture.md "Event path").

The connection side (worker/main.py) depends only on this surface. `accept`
runs inside the SDK callback, before the ACK, on the loop that also carries
the connection: it decodes three fields, commits one INSERT OR IGNORE and
wakes the consumer. Everything slow (parsing, handler, reply, logging the
event) happens later in the consumer.
"""

import logging
import time
from time import perf_counter

import msgspec

from shared.botconfig import BotConfig
from shared.paths import DataPaths
from worker.consumer import Consumer, ConsumerSettings
from worker.counters import Counters
from worker.handlers import HttpSession, build_handler
from worker.processor import EventProcessor
from worker.replies import Messenger
from worker.spool import DEAD, PENDING, DeadLetter, Spool
from worker.webhook import WebhookReceiver

log = logging.getLogger(__name__)

__all__ = ["ConsumerSettings", "Counters", "EventPipeline", "SpoolingEventHandler"]


class _AckHeader(msgspec.Struct):
    event_id: str = ""
    event_type: str = ""


class _AckMessage(msgspec.Struct):
    chat_id: str = ""


class _AckEvent(msgspec.Struct):
    message: _AckMessage | None = None
    type: str = ""


class _AckEnvelope(msgspec.Struct):
    header: _AckHeader | None = None
    event: _AckEvent | None = None
    uuid: str = ""


_ack_decoder = msgspec.json.Decoder(_AckEnvelope)


class SpoolingEventHandler:
    """Duck-types the SDK's EventDispatcherHandler for ws.Client.

    ws.Client calls only `_do_without_validation(payload)`: returning None
    makes the SDK ACK with code 200, raising makes it ACK with code 500.
    """

    def __init__(self, pipeline: "EventPipeline") -> None:
        self._pipeline = pipeline

    def _do_without_validation(self, payload: bytes) -> None:
        self._pipeline.accept(payload)


class EventPipeline:
    """Owns the bot's spool, consumer, handler and IM client."""

    def __init__(
        self, bot: BotConfig, paths: DataPaths, settings: ConsumerSettings | None = None
    ) -> None:
        self.bot = bot
        self.paths = paths
        self.counters = Counters()
        self._spool = Spool(paths.spool(bot.id))
        counts = self._spool.counts()
        self.counters.pending = counts.get(PENDING, 0)
        self.counters.dead_letters = counts.get(DEAD, 0)
        self._http = HttpSession()
        self._messenger = Messenger(bot)
        settings = settings or ConsumerSettings()
        self._handler = build_handler(bot.handler, self._http, self._spool, settings.concurrency)
        processor = EventProcessor(
            bot, self._spool, self._handler, self._messenger, self.counters
        )
        self._consumer = Consumer(self._spool, processor.process, self.counters, settings)
        self._webhook = WebhookReceiver(bot, self.accept)

    def sdk_event_handler(self) -> SpoolingEventHandler:
        """The object to pass as ws.Client(event_handler=...)."""
        return SpoolingEventHandler(self)

    def accept(self, payload: bytes) -> None:
        """Commit the raw event to the spool (dedup by event_id) before the ACK.

        A payload that is not an event is dropped with a warning (ACK 200:
        redelivering it cannot help); a spool failure raises (ACK 500, so the
        platform redelivers). The time spent here is the ACK latency metric.
        """
        started = perf_counter()
        try:
            self._spool_event(payload)
        finally:
            self.counters.ack_latency.observe(perf_counter() - started)

    def _spool_event(self, payload: bytes) -> None:
        try:
            envelope = _ack_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("dropped a payload that is not an event (%d bytes)", len(payload))
            return
        header, event = envelope.header, envelope.event
        if header is not None:
            event_id, event_type = header.event_id, header.event_type
        else:
            event_id, event_type = envelope.uuid, "p1." + (event.type if event else "")
        if not event_id:
            log.warning("dropped an event without an event id (%d bytes)", len(payload))
            return
        chat_id = event.message.chat_id if event is not None and event.message else ""
        chat_key = chat_id or event_id
        if self._spool.add(event_id, chat_key, event_type, payload):
            counters = self.counters
            counters.events_received += 1
            counters.pending += 1
            counters.last_event_at = time.time()
            self._consumer.enqueue(event_id, chat_key)
        else:
            self.counters.duplicates += 1

    async def run(self) -> None:
        """Consume spooled events until cancelled; unfinished rows from a previous run first."""
        await self._consumer.run()

    async def handle_webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """Verify, decrypt and spool a webhook push: (status, body, content type)."""
        return self._webhook.handle(headers, body)

    async def send(
        self, receive_id: str, receive_id_type: str, text: str, uuid: str | None
    ) -> tuple[bool, str | None, int | None, str | None]:
        """Send a message: (ok, message_id, code, error). Counted in messages_sent."""
        result = await self._messenger.create(receive_id, receive_id_type, text, uuid)
        if result.ok:
            self.counters.messages_sent += 1
            log.info("sent message %s to %s %s", result.message_id, receive_id_type, receive_id)
        else:
            log.warning("send to %s %s failed: code %s: %s", receive_id_type, receive_id,
                        result.code, result.error)
        return result.ok, result.message_id, result.code, result.error

    async def retry_dead_letter(self, event_id: str) -> tuple[bool, str | None]:
        """Queue a dead letter again with fresh attempts: (ok, error)."""
        if not self._spool.revive(event_id):
            status = self._spool.status(event_id)
            return False, "unknown event" if status is None else f"event is {status}, not dead"
        self.counters.dead_letters -= 1
        self.counters.pending += 1
        log.info("event %s queued again from the dead letters", event_id)
        revived = self._spool.get(event_id)
        if revived is not None:
            self._consumer.enqueue(event_id, revived.chat_key)
        return True, None

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, for the API's list."""
        return self._spool.dead_letters(limit)

    async def close(self) -> None:
        """Close the HTTP session, the threads and the spool; call after `run` was cancelled."""
        await self._http.close()
        self._handler.close()
        self._messenger.close()
        self._spool.close()
