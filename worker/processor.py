"""One attempt at one spooled event: parse, run the handler, send its replies, mark done.

The handler's answer is stored before the replies are sent, so a failed send
is retried without running the handler again (a forward target or a model
is not asked twice). Reply number i (part j) carries uuid = a hash of (the
message answered, i, j) (shared/idempotency.py, worker/outbox.py), so a
resend after a crash, or the same message pushed again under a new event
id, is dropped by the platform instead of shown twice, and a result's
messages keep their order. A text stream is shown in one card
(worker/streaming.py).
"""

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from shared.botconfig import BotConfig
from shared.results import Reply, decode_replies, encode_replies, reply_text
from worker.content import Addressee, ContentError, IdentityNeeded, Message, NotForBot, parse_event
from worker.counters import Counters
from worker.errors import EventError
from worker.handlers import Handler
from worker.identity import BotIdentity
from worker.outbox import Outbox, target_of
from worker.replies import Messenger, Target
from worker.spool import Spool, SpooledEvent
from worker.streaming import StreamedCard

log = logging.getLogger(__name__)


class EventProcessor:
    """Processes one event per call; raises EventError (or anything) to have it retried."""

    def __init__(
        self, bot: BotConfig, spool: Spool, handler: Handler, messenger: Messenger,
        counters: Counters,
    ) -> None:
        self._bot = bot
        self._spool = spool
        self._handler = handler
        self._messenger = messenger
        self._counters = counters
        self._identity = BotIdentity(messenger, bot.app_id)
        self._outbox = Outbox(messenger, bot.options, counters)

    async def process(self, event: SpooledEvent) -> None:
        """Handle and reply; marks the row done on success."""
        log.debug("event %s taken (chat %s, %s, attempt %d)", event.event_id, event.chat_key,
                  event.event_type, event.attempts)
        message = await self._parse(event)
        if isinstance(message, NotForBot):
            self._spool.complete(event.event_id)
            log.info("event %s ignored: %s", event.event_id, message.reason)
            return
        async with self._typing(event, message):
            await self._answer(event, message)

    async def _answer(self, event: SpooledEvent, message: Message) -> None:
        target = target_of(message)
        started = time.monotonic()
        if event.handled:
            replies = decode_replies(event.answer or "")
        else:
            answer = await self._handler.handle(message)
            if not isinstance(answer, list):
                if target is None:
                    raise EventError(f"a {message.event_type} event names no chat to stream to",
                                     permanent=True)
                await self._stream(event, message, target, answer, started)
                return
            replies = answer
            if replies:
                self._spool.save_answer(event.event_id, encode_replies(replies))
        handled_ms = (time.monotonic() - started) * 1000
        shown, message_ids = await self._send(event, message, replies)
        self._spool.complete(event.event_id, message.conversation,
                             self._handler.history(message, reply_text(shown) or None))
        self._log_done(event, handled_ms, replies, message_ids)

    @staticmethod
    def _log_done(event: SpooledEvent, handled_ms: float, replies: list[Reply],
                  message_ids: list[str]) -> None:
        """One line per event, written once it is done: a line per step (received, handled,
        replied) cost ~15 % of a worker's CPU per event (bench/NOTES.md)."""
        what = "handled" if not event.handled else "answer kept from an earlier attempt"
        if not replies:
            outcome = "no reply"
        elif not message_ids:
            outcome = f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'} dropped"
        else:
            latency = (time.time() - event.created_at) * 1000
            outcome = f"replied as {', '.join(message_ids)} (latency {latency:.0f} ms)"
        log.info("event %s received (chat %s, %s, attempt %d), %s in %d ms, %s",
                 event.event_id, event.chat_key, event.event_type, event.attempts, what,
                 handled_ms, outcome)

    @contextlib.asynccontextmanager
    async def _typing(self, event: SpooledEvent, message: Message) -> AsyncIterator[None]:
        """The bot's `typingReaction` on the message while it is answered (im/v1 message
        reactions); a reaction that cannot be set or removed is logged, never fatal."""
        emoji = self._bot.options.typing_reaction
        if not emoji or not message.message_id or event.handled:
            yield
            return
        added = await self._messenger.add_reaction(message.message_id, emoji)
        if not added.ok:
            log.warning("event %s: typing reaction not set: code %s: %s", event.event_id,
                        added.code, added.error)
        try:
            yield
        finally:
            if added.ok and added.key:
                removed = await self._messenger.remove_reaction(message.message_id, added.key)
                if not removed.ok:
                    log.warning("event %s: typing reaction not removed: code %s: %s",
                                event.event_id, removed.code, removed.error)

    async def _parse(self, event: SpooledEvent) -> Message | NotForBot:
        """Parse with what is known of the bot; fetch its open_id first when that is needed."""
        options = self._bot.options
        try:
            try:
                return parse_event(event.payload, Addressee(
                    self._identity.known, options.answer_at_all, options.answer_bots))
            except IdentityNeeded:
                return parse_event(event.payload, Addressee(
                    await self._identity.open_id(), options.answer_at_all, options.answer_bots))
        except ContentError as exc:
            raise EventError(str(exc), permanent=True) from None

    async def _send(self, event: SpooledEvent, message: Message,
                    replies: list[Reply]) -> tuple[list[Reply], list[str]]:
        """Send the replies: (the ones the user was shown, their message ids); ([], []) when
        there were none or the answer was dropped."""
        if not replies:
            return [], []
        message_ids = await self._outbox.deliver(message, replies)
        if not message_ids:
            return [], []
        for message_id in message_ids:
            self._replied(event, message_id)
        return replies, [m or "" for m in message_ids]

    async def _stream(self, event: SpooledEvent, message: Message, target: Target,
                      pieces: AsyncIterator[str], started: float) -> None:
        card = StreamedCard(self._messenger, self._spool, event.event_id, target,
                            message.message_id or event.event_id)
        text = await card.show(pieces)
        self._replied(event, card.message_id)
        log.info("event %s streamed in %d ms into card %s (%d updates, %d chars)",
                 event.event_id, (time.monotonic() - started) * 1000, card.message_id,
                 card.updates, len(text))
        self._spool.complete(event.event_id, message.conversation,
                             self._handler.history(message, text or None))

    def _replied(self, event: SpooledEvent, message_id: str | None) -> None:
        latency = time.time() - event.created_at
        self._counters.counts.replies_sent += 1
        self._counters.reply_latency.observe(latency)
        log.debug("event %s replied as %s (latency %d ms)", event.event_id, message_id,
                  latency * 1000)
