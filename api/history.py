"""What the per-bot page shows over time: state timeline and events/replies per minute.

Kept in memory by one listener of the fleet's change feed, for the last day:
a state change is a record the supervisor already publishes, and a per-minute
count is the difference of two successive counter snapshots, so nothing is
added to the worker's hot path or the spool. The price is that a supervisor
restart starts an empty history (the spool keeps the events themselves; the
Prometheus counters at /metrics keep totals for a long-term store). Memory is
bounded: at most TIMELINE_MAX records and one day of minutes per bot.

GET /api/feishu/bots/{id}/history answers it together with the ACK and reply
latency quantiles of the bot's histograms (every incarnation since start).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from api.auth import owned_bot
from api.body import json_response
from api.keys import FLEET
from api.routing import Route
from shared.changes import Change, ChangeKind
from shared.messages import ACK_BUCKETS, REPLY_BUCKETS, Histogram

logger = logging.getLogger(__name__)

DAY = 86_400.0
TIMELINE_MAX = 2_000
"""State changes kept per bot (a bot flapping all day keeps its latest ones)."""
MINUTES = 1_440


class TimelineEntry(msgspec.Struct, rename="camel", kw_only=True):
    at: float
    """Epoch seconds."""
    from_state: str | None
    to_state: str | None
    why: str
    error: str | None = None


class MinuteCount(msgspec.Struct, rename="camel", kw_only=True):
    minute: int
    """Epoch seconds of the minute's start."""
    events_received: int = 0
    replies_sent: int = 0


class Latency(msgspec.Struct, rename="camel", kw_only=True):
    """Quantiles estimated from histogram buckets (the bucket's upper bound, in seconds)."""

    count: int
    mean: float | None
    p50: float | None
    p99: float | None


class BotHistory(msgspec.Struct, rename="camel", kw_only=True):
    bot_id: str
    since: float
    """Epoch seconds this history starts at (the supervisor's start, or a day ago)."""
    timeline: list[TimelineEntry]
    per_minute: list[MinuteCount]
    ack_latency: Latency
    reply_latency: Latency


@dataclass
class _Track:
    timeline: deque[TimelineEntry] = field(default_factory=lambda: deque(maxlen=TIMELINE_MAX))
    minutes: deque[MinuteCount] = field(default_factory=lambda: deque(maxlen=MINUTES))
    last: tuple[int, int] | None = None
    """(eventsReceived, repliesSent) of the last snapshot: one incarnation's counters."""


class History:
    """Per-bot timeline and minute counts, fed by `take(change)` on the event loop."""

    def __init__(self) -> None:
        self.since = time.time()
        self._bots: dict[str, _Track] = {}

    def take(self, change: Change) -> None:
        if change.kind == ChangeKind.REMOVED:
            self._bots.pop(change.bot_id, None)
            return
        track = self._bots.setdefault(change.bot_id, _Track())
        status = change.status
        if change.kind == ChangeKind.STATE:
            track.timeline.append(TimelineEntry(
                at=change.at_epoch, from_state=change.from_state, to_state=change.to_state,
                why=change.why, error=status.error if status is not None else None,
            ))
        if status is None:
            return
        now = (status.events_received, status.replies_sent)
        before = track.last
        track.last = now
        if before is None:
            return
        # A new worker incarnation starts its counters at 0: count from there.
        events = now[0] - before[0] if now[0] >= before[0] else now[0]
        replies = now[1] - before[1] if now[1] >= before[1] else now[1]
        if events or replies:
            self._count(track, int(change.at_epoch // 60 * 60), events, replies)

    @staticmethod
    def _count(track: _Track, minute: int, events: int, replies: int) -> None:
        if not track.minutes or track.minutes[-1].minute < minute:
            track.minutes.append(MinuteCount(minute=minute))
        bucket = track.minutes[-1]
        bucket.events_received += events
        bucket.replies_sent += replies

    def of(self, bot_id: str, now: float) -> tuple[list[TimelineEntry], list[MinuteCount]]:
        """The last day of one bot: (timeline, minutes with any count), oldest first."""
        track = self._bots.get(bot_id)
        if track is None:
            return [], []
        cutoff = now - DAY
        return ([e for e in track.timeline if e.at >= cutoff],
                [m for m in track.minutes if m.minute >= cutoff])


HISTORY = web.AppKey("history", History)


def latency(histogram: Histogram, bounds: tuple[float, ...]) -> Latency:
    """p50/p99 as the upper bound of the bucket holding them (None above every bound)."""
    if histogram.count == 0:
        return Latency(count=0, mean=None, p50=None, p99=None)

    def quantile(q: float) -> float | None:
        rank, seen = q * histogram.count, 0
        for index, count in enumerate(histogram.buckets):
            seen += count
            if seen >= rank:
                return bounds[index] if index < len(bounds) else None
        return None

    return Latency(count=histogram.count, mean=histogram.sum / histogram.count,
                   p50=quantile(0.5), p99=quantile(0.99))


async def _listen(app: web.Application) -> None:
    history = app[HISTORY]
    with app[FLEET].subscribe() as subscription:
        async for change in subscription:
            try:
                history.take(change)
            except Exception:
                logger.exception("history: could not take the change of bot %s", change.bot_id)


async def history_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the listener runs for the life of the app."""
    task = asyncio.get_running_loop().create_task(_listen(app))
    task.add_done_callback(_seen)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _seen(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("history listener stopped", exc_info=task.exception())


async def bot_history(request: web.Request) -> web.Response:
    bot_id = owned_bot(request).config.id
    timeline, minutes = request.app[HISTORY].of(bot_id, time.time())
    metrics = request.app[FLEET].metrics(bot_id)
    return json_response(BotHistory(
        bot_id=bot_id, since=max(request.app[HISTORY].since, time.time() - DAY),
        timeline=timeline, per_minute=minutes,
        ack_latency=latency(metrics.ack_latency, ACK_BUCKETS),
        reply_latency=latency(metrics.reply_latency, REPLY_BUCKETS),
    ))


ROUTES = [
    Route("GET", "/api/feishu/bots/{id}/history", bot_history,
          "The bot's last day: state timeline, events and replies per minute, latencies",
          None, BotHistory, (200, 401, 404)),
]
