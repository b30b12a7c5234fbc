"""One attempt at one spooled event: parse, run the handler, reply, mark done.

The handler's answer is stored before the reply is sent, so a failed reply
is retried without running the handler again (a forward target or a model
is not asked twice). The reply carries uuid = a hash of the event id, so a
resend after a crash is dropped by the platform instead of shown twice.
"""

import logging
import time

from shared.botconfig import BotConfig
from worker.content import ContentError, NotForBot, parse_event
from worker.counters import Counters
from worker.errors import EventError
from worker.handlers import Handler
from worker.replies import Messenger, reply_uuid
from worker.spool import Spool, SpooledEvent

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

    async def process(self, event: SpooledEvent) -> None:
        """Handle and reply; marks the row done on success."""
        if event.attempts == 0 and not event.handled:
            log.info("event %s received (chat %s, %s)", event.event_id, event.chat_key,
                     event.event_type)
        try:
            message = parse_event(event.payload, self._bot.name)
        except ContentError as exc:
            raise EventError(str(exc), permanent=True) from None
        if isinstance(message, NotForBot):
            self._spool.complete(event.event_id)
            log.info("event %s ignored: %s", event.event_id, message.reason)
            return
        if event.handled:
            answer = event.answer
        else:
            started = time.monotonic()
            answer = await self._handler.handle(message)
            if answer:
                self._spool.save_answer(event.event_id, answer)
            log.info("event %s handled in %d ms (%s)", event.event_id,
                     (time.monotonic() - started) * 1000, "reply" if answer else "no reply")
        if answer:
            result = await self._messenger.reply(message.message_id, answer,
                                                 reply_uuid(event.event_id))
            if not result.ok:
                raise EventError(f"reply failed: code {result.code}: {result.error}",
                                 rate_limited=result.rate_limited)
            latency = time.time() - event.created_at
            self._counters.replies_sent += 1
            self._counters.reply_latency.observe(latency)
            log.info("event %s replied as %s (latency %d ms)", event.event_id,
                     result.message_id, latency * 1000)
        self._spool.complete(event.event_id, message.chat_id,
                             self._handler.history(message, answer))
