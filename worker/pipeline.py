"""The event path of one bot: spool, consumer, handler, replies (architecture.md "Event path").

The connection side (worker/main.py) depends only on this surface. `accept`
runs inside the SDK callback, before the ACK, on the loop that also carries
the connection: it decodes three fields, commits one INSERT OR IGNORE and
wakes the consumer. Everything slow (parsing, handler, reply, logging the
event) happens later in the consumer.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgspec

from shared.botconfig import BotConfig
from shared.idempotency import api_send_uuid
from shared.paths import DataPaths
from shared.results import Reply
from shared.security import SecurityPolicy
from worker.cardaction import CARD_ACTION_EVENT, is_card_action, parse_card_action
from worker.consumer import Consumer, ConsumerSettings, no_work
from worker.counters import Counters
from worker.errors import EventError
from worker.handlers import HttpSession, build_handler
from worker.processor import EventProcessor
from worker.replies import Messenger, Target
from worker.spool import DEAD, PENDING, DeadLetter, Spool
from worker.webhook import JSON_TYPE, CallbackRequest, WebhookReceiver

log = logging.getLogger(__name__)

CARD_ACTION_DEADLINE_S = 2.5
"""A card action's answer must reach the platform within ~3 s (feishu-protocol.md 1.7, 3.5);
past this the handler is abandoned and the answer is empty."""

__all__ = ["ConsumerSettings", "Counters", "EventPipeline", "SpoolingEventHandler"]


class _AckHeader(msgspec.Struct):
    event_id: str = ""
    event_type: str = ""


class _AckMessage(msgspec.Struct):
    chat_id: str = ""
    message_id: str = ""


class _AckEvent(msgspec.Struct):
    message: _AckMessage | None = None
    type: str = ""
    chat_id: str = ""


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
        if is_card_action(payload):
            log.warning("a card action arrived on the synchronous path (in parts?): "
                        "answered empty")
            return
        self._pipeline.accept(payload)

    async def answer_callback(self, payload: bytes) -> dict[str, Any] | None:
        """A callback's answer for the ACK's `data` (worker/connection.py), None for an empty
        one; only card actions are callbacks."""
        return await self._pipeline.answer_card_action(payload)

    @staticmethod
    def is_callback(payload: bytes) -> bool:
        return is_card_action(payload)


class EventPipeline:
    """Owns the bot's spool, consumer, handler and IM client."""

    def __init__(
        self, bot: BotConfig, paths: DataPaths, settings: ConsumerSettings | None = None,
        policy: SecurityPolicy | None = None,
    ) -> None:
        """`policy`: the operator's rules for this bot's owner (None: no URL/target checks)."""
        self.bot = bot
        self.paths = paths
        self.counters = Counters()
        self._spool = Spool(paths.spool(bot.id))
        rows = self._spool.counts()
        self.counters.counts.pending = rows.get(PENDING, 0)
        self.counters.counts.dead_letters = rows.get(DEAD, 0)
        self._http = HttpSession(policy.urls if policy is not None else None)
        self._messenger = Messenger(bot)
        settings = settings or ConsumerSettings()
        self._handler = build_handler(
            bot.handler, self._http, self._spool, settings.concurrency, policy
        )
        processor = EventProcessor(
            bot, self._spool, self._handler, self._messenger, self.counters
        )
        self._consumer = Consumer(self._spool, processor.process, self.counters, settings)
        max_age = settings.retention_s
        if policy is not None and policy.webhook_max_age is not None:
            max_age = min(policy.webhook_max_age, settings.retention_s)
        self._webhook = WebhookReceiver(bot, self.accept, max_age)
        self._on_work: Callable[[], None] = no_work

    def on_work(self, poke: Callable[[], None]) -> None:
        """`poke()` runs (on the loop) when work starts: an event arrives, the consumer
        starts handling one (a retry included). The session beats often again then
        (worker/beats.py): a working loop is not asleep in epoll_wait, so the supervisor
        needs its beats."""
        self._on_work = poke
        self._consumer.on_work = poke

    def busy(self) -> bool:
        """An event is being handled now: its reply will change the counters."""
        return self._consumer.busy

    def keep_answered(self, on_first: Callable[[], None]) -> None:
        """Cluster mode: keep the keys of answered events for `take_answered`;
        `on_first()` runs (on the thread that finished the event) when some are kept."""
        self._spool.answered = []
        self._spool.on_answered = on_first

    def take_answered(self) -> list[tuple[str, str]]:
        """(event id, message id or "") of the events done since the last call, oldest
        first; always empty unless `keep_answered` was called."""
        kept = self._spool.answered
        if not kept:
            return []
        self._spool.answered = []
        return kept

    def sdk_event_handler(self) -> SpoolingEventHandler:
        """The object to pass as ws.Client(event_handler=...)."""
        return SpoolingEventHandler(self)

    def accept(self, payload: bytes) -> None:
        """Commit the raw event to the spool (dedup by event_id and message_id) before the ACK.

        A payload that is not an event is dropped with a warning (ACK 200:
        redelivering it cannot help); a spool failure raises (ACK 500, so the
        platform redelivers). The time spent here is the ACK latency metric.
        """
        started = perf_counter()
        self._on_work()
        try:
            self._spool_event(payload)
        finally:
            self.counters.ack_latency.observe(perf_counter() - started)

    def _spool_event(self, payload: bytes) -> None:
        try:
            envelope = _ack_decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
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
        message = event.message if event is not None else None
        chat_id = message.chat_id if message is not None else (event.chat_id if event else "")
        chat_key = chat_id or event_id
        message_id = message.message_id if message is not None else ""
        if self._spool.add(event_id, chat_key, event_type, payload, message_id):
            counts = self.counters.counts
            counts.events_received += 1
            counts.pending += 1
            self.counters.last_event_epoch = time.time()
            self._consumer.enqueue(event_id, chat_key)
        else:
            self.counters.duplicates += 1

    async def warm_up(self) -> None:
        """Fetch the tenant token once the platform is reachable, so the first reply pays
        neither the token request nor the connection (worker/sdkhttp.py keeps it open).
        A failure is only logged: the first send fetches it again and reports its own."""
        started = perf_counter()
        try:
            await self._messenger.fetch_token()
        except Exception as exc:
            log.warning("tenant token not fetched at connect: %s: %s", type(exc).__name__, exc)
        else:
            log.debug("tenant token fetched in %d ms", (perf_counter() - started) * 1000)

    async def run(self) -> None:
        """Consume spooled events until cancelled; unfinished rows from a previous run first."""
        await self._consumer.run()

    async def handle_webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """Verify, decrypt and spool a webhook push: (status, body, content type).

        A card action is answered in the response body (its CardActionResult, `{}` if none).
        """
        outcome = self._webhook.handle(headers, body)
        if isinstance(outcome, CallbackRequest):
            answer = await self.answer_card_action(outcome.payload)
            return 200, json.dumps(answer or {}, ensure_ascii=False).encode(), JSON_TYPE
        return outcome

    async def answer_card_action(self, payload: bytes) -> dict[str, Any] | None:
        """Run the handler on a card click within CARD_ACTION_DEADLINE_S: the answer as the
        platform reads it (CardActionResult.wire), or None for an empty one.

        Deduplicated by event id like messages: a redelivery gets the first answer again
        (or an empty one while the first is still being worked out). A handler that is
        late or fails gets an empty answer and a log line; the click is not retried.
        """
        started = perf_counter()
        try:
            action = parse_card_action(payload)
        except ValueError as exc:
            log.warning("dropped a card action: %s", exc)
            return None
        written = self._spool.add_answered(action.event_id, CARD_ACTION_EVENT, payload)
        self._consumer.wrote()
        if not written:
            self.counters.duplicates += 1
            known = self._spool.answer_of(action.event_id)
            log.info("card action %s is a redelivery: %s", action.event_id,
                     "the first answer again" if known and known[1] else "empty answer")
            return json.loads(known[1]) if known and known[1] else None
        self.counters.counts.events_received += 1
        self.counters.last_event_epoch = time.time()
        try:
            async with asyncio.timeout(CARD_ACTION_DEADLINE_S):
                result = await self._handler.card_action(action)
        except TimeoutError:
            log.warning("card action %s: no answer within %.1f s; answered empty",
                        action.event_id, CARD_ACTION_DEADLINE_S)
            return None
        except Exception as exc:
            log.warning("card action %s: handler failed, answered empty: %s", action.event_id,
                        exc, exc_info=not isinstance(exc, EventError))
            return None
        answer = result.wire() if result is not None else None
        self._spool.save_answer(action.event_id,
                                json.dumps(answer, ensure_ascii=False) if answer else None)
        self._consumer.wrote()
        self.counters.counts.events_handled += 1
        log.info("card action %s answered in %d ms (%s)", action.event_id,
                 (perf_counter() - started) * 1000,
                 ", ".join(answer) if answer else "empty")
        return answer

    async def send(
        self, receive_id: str, receive_id_type: str, replies: list[Reply], uuid: str | None
    ) -> tuple[bool, list[str], int | None, str | None]:
        """Send messages in order, stopping at the first failure:
        (ok, message ids sent, code, error). Each counts in messages_sent.

        Message i carries the caller's uuid (i = 0) or one derived from it
        (shared/idempotency.py), so a repeated request sends nothing twice.
        """
        target = Target.new(receive_id, receive_id_type)
        message_ids: list[str] = []
        for position, reply in enumerate(replies):
            result = await self._messenger.send_reply(
                target, reply, api_send_uuid(uuid, position))
            if not result.ok:
                log.warning("send %d to %s %s failed: code %s: %s", position, receive_id_type,
                            receive_id, result.code, result.error)
                return False, message_ids, result.code, result.error
            self.counters.messages_sent += 1
            message_ids.append(result.message_id or "")
            log.info("sent message %s to %s %s", result.message_id, receive_id_type, receive_id)
        return True, message_ids, 0, None

    async def retry_dead_letter(self, event_id: str) -> tuple[bool, str | None]:
        """Queue a dead letter again with fresh attempts: (ok, error)."""
        if not self._spool.revive(event_id):
            status = self._spool.status(event_id)
            return False, "unknown event" if status is None else f"event is {status}, not dead"
        self.counters.counts.dead_letters -= 1
        self.counters.counts.pending += 1
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
