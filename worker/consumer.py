"""Takes spooled events in arrival order per chat, concurrently across chats.

Only the oldest pending event of a chat may run, so a chat's replies keep the
order of its messages; an event waiting for a retry holds its chat back
until it succeeds or becomes a dead letter. Failures retry with exponential
backoff (longer when rate-limited) and become dead letters after
`max_attempts`. Taking a row counts the attempt before the handler runs, so
an event that kills its worker is dead-lettered too once its attempts are
used up (checked when it is taken again after the restart). Cancelling `run`
leaves in-flight rows pending with the attempt given back: they are
processed again on the next start.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from shared.logs import redactor
from worker.counters import Counters
from worker.errors import EventError
from worker.schedule import Schedule
from worker.spool import NO_OUTCOME, Spool, SpooledEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSettings:
    """Retry, concurrency and retention knobs (defaults suit production)."""

    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    rate_limit_delay_s: float = 10.0
    concurrency: int = 8
    retention_s: float = 24 * 3600.0
    prune_interval_s: float = 600.0
    first_prune_after_s: float = 60.0
    """The first prune waits `first_prune_delay()`, around this long, after the start,
    unless the last one (Spool.pruned_at) is more than `prune_interval_s` old. A fleet's
    workers start together (a boot, a 1,000-bot connect), and each prune opens a second
    SQLite connection in a thread: at once, ~1.5 ms of CPU per worker landed on the
    connect (bench/NOTES.md, "Fourth look"); spread over a minute, the prunes also do not
    all hit the disk in the same second. An overdue spool is pruned at start, so a worker
    that never lives a minute (a crash loop, a bot reconnected often) still prunes."""
    checkpoint_interval_s: float = 1.0
    """A WAL checkpoint follows this long after the spool was written."""
    checkpoint_rest_s: float = 600.0
    """With no write announced (`Consumer.wrote`), the checkpoint task still looks this
    often: a net for a write path that does not announce itself. Each look is two wakes
    of an idle worker (the look, then `checkpoint_interval_s`): every 60 s that was 0.03
    wakes a second per idle worker; SQLite's own safety checkpoint (spool.py,
    SAFETY_CHECKPOINT_PAGES) bounds the WAL meanwhile."""
    history_keep: int = 200

    def first_prune_delay(self) -> float:
        """Seconds from the start to the first prune: 0.5-1.5x `first_prune_after_s`."""
        return self.first_prune_after_s * random.uniform(0.5, 1.5)

    def retry_delay(self, attempts: int, rate_limited: bool) -> float:
        """Seconds before the next attempt after `attempts` failures, with 10% jitter."""
        delay = min(self.backoff_base_s * 2 ** (attempts - 1), self.backoff_cap_s)
        if rate_limited:
            delay = max(delay * 2, self.rate_limit_delay_s)
        return delay * random.uniform(0.9, 1.1)


Process = Callable[[SpooledEvent], Awaitable[None]]


class Consumer:
    """Schedules `process` over the spool; `process` marks the row done on success."""

    def __init__(
        self, spool: Spool, process: Process, counters: Counters, settings: ConsumerSettings
    ) -> None:
        self._spool = spool
        self._process = process
        self._counters = counters
        self._settings = settings
        self._wake = asyncio.Event()
        self._written = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._schedule = Schedule()
        self.on_work: Callable[[], None] = no_work
        """Runs (on the loop) when an event's handling starts (EventPipeline.on_work)."""
        for event in spool.pending():
            self._schedule.add(event.chat_key, event.event_id, event.next_attempt_at)

    def enqueue(self, event_id: str, chat_key: str) -> None:
        """A newly spooled (or revived) event: queue it behind its chat and wake up."""
        self._schedule.add(chat_key, event_id)
        self.wrote()
        self.wake()

    @property
    def busy(self) -> bool:
        """An event is being handled now."""
        return bool(self._inflight)

    def wrote(self) -> None:
        """The spool was written (call on the consumer's loop): checkpoint it soon."""
        self._written.set()

    def wake(self) -> None:
        """Have the consumer look at its schedule again (call on the consumer's loop)."""
        self._wake.set()

    async def run(self) -> None:
        """Consume until cancelled."""
        background = [
            asyncio.create_task(self._checkpoint_forever(), name="spool-checkpoint"),
            asyncio.create_task(self._prune_forever(), name="spool-prune"),
        ]
        try:
            while True:
                self._wake.clear()
                due = self._start_ready()
                timeout = None if due is None else max(due - time.time(), 0.0)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel
                # that stops this loop when the wake lands at the same moment.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            tasks = [*background, *self._inflight.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start_ready(self) -> float | None:
        """Start runnable events up to the concurrency; return when the next retry is due."""
        now = time.time()
        while len(self._inflight) < self._settings.concurrency:
            taken = self._schedule.take(now)
            if taken is None:
                break
            chat_key, event_id = taken
            self.on_work()
            task = asyncio.create_task(self._run_one(chat_key, event_id), name=f"event-{event_id}")
            self._inflight[chat_key] = task
        return self._schedule.next_due()

    async def _run_one(self, chat_key: str, event_id: str) -> None:
        retry_epoch: float | None = None
        try:
            event = self._spool.take(event_id)
            if event is None:
                return
            if event.attempts > self._settings.max_attempts:
                self._spool.untake(event_id)  # the rare path pays a statement, not every event
                self._bury(replace(event, attempts=event.attempts - 1))
                return
            try:
                await self._process(event)
            except asyncio.CancelledError:
                self._spool.untake(event_id)
                raise
            except Exception as exc:
                retry_epoch = self._record_failure(event, exc)
            else:
                self._counters.counts.pending -= 1
                self._counters.counts.events_handled += 1
        except Exception:
            log.exception("event %s: spool update failed; trying again shortly", event_id)
            retry_epoch = time.time() + self._settings.backoff_base_s
        finally:
            self._inflight.pop(chat_key, None)
            if retry_epoch is None:
                self._schedule.done(chat_key)
            else:
                self._schedule.retry(chat_key, retry_epoch)
            self._written.set()
            self._wake.set()

    def _bury(self, event: SpooledEvent) -> None:
        """Dead-letter an event whose every attempt ended with its worker: the chat moves on."""
        self._spool.fail(event.event_id, NO_OUTCOME, None)
        self._counters.counts.pending -= 1
        self._counters.counts.events_failed += 1
        self._counters.counts.dead_letters += 1
        log.error("event %s dead-lettered after %d attempt(s): %s",
                  event.event_id, event.attempts, NO_OUTCOME)

    def _record_failure(self, event: SpooledEvent, exc: Exception) -> float | None:
        """Record the failed attempt (`take` counted it); return when to retry, or None once
        it is a dead letter."""
        attempts = event.attempts
        self._counters.counts.events_failed += 1
        permanent = isinstance(exc, EventError) and exc.permanent
        rate_limited = isinstance(exc, EventError) and exc.rate_limited
        error = str(exc) if isinstance(exc, EventError) else f"{type(exc).__name__}: {exc}"
        error = redactor.redact(error)  # kept in the spool and answered by the dead-letter API
        if not isinstance(exc, EventError) and attempts == 1:
            log.error("event %s handler raised", event.event_id, exc_info=exc)
        if permanent or attempts >= self._settings.max_attempts:
            self._spool.fail(event.event_id, error, None)
            self._counters.counts.pending -= 1
            self._counters.counts.dead_letters += 1
            log.error("event %s dead-lettered after %d attempt(s): %s",
                      event.event_id, attempts, error)
            return None
        retry_epoch = time.time() + self._settings.retry_delay(attempts, rate_limited)
        self._spool.fail(event.event_id, error, retry_epoch)
        log.warning("event %s failed (attempt %d/%d), retry in %.1f s: %s",
                    event.event_id, attempts, self._settings.max_attempts,
                    retry_epoch - time.time(), error)
        return retry_epoch

    async def _checkpoint_forever(self) -> None:
        """Checkpoint `checkpoint_interval_s` after the spool was written; at rest, sleep
        until the next write instead of waking every second to find nothing to do."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.checkpoint_rest_s):
                    await self._written.wait()
            self._written.clear()
            await asyncio.sleep(self._settings.checkpoint_interval_s)
            if not self._spool.written_since_checkpoint():
                continue
            try:
                await asyncio.to_thread(self._spool.checkpoint)
            except Exception:
                log.exception("spool checkpoint failed")

    async def _prune_forever(self) -> None:
        """Prune soon after the start (`first_prune_delay`; at once when overdue), then
        every `prune_interval_s`, in a thread: the loop that ACKs events never runs it
        (Spool.prune: batched, indexed, its own connection)."""
        if time.time() - self._spool.pruned_at() < self._settings.prune_interval_s:
            await asyncio.sleep(self._settings.first_prune_delay())
        while True:
            try:
                deleted = await asyncio.to_thread(
                    self._spool.prune, self._settings.retention_s, self._settings.history_keep
                )
            except Exception:
                log.exception("spool prune failed")
            else:
                if deleted:
                    log.info("pruned %d done events from the spool", deleted)
            await asyncio.sleep(self._settings.prune_interval_s)


def no_work() -> None:
    """The default `on_work` of the consumer and the pipeline: nobody listens."""
