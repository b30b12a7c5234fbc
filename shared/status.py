"""The status of one bot as the API reports it (architecture.md, ws/status)."""

import msgspec

from shared.counts import EventCounts
from shared.messages import Heartbeat, Histogram
from shared.states import ConnState


class BotStatus(EventCounts, rename="camel", kw_only=True):
    """One entry of `GET /api/feishu/ws/status`. Times are ISO-8601 UTC or null.

    The current worker incarnation's event counts (`eventsReceived`, `repliesSent`,
    `pending`, `deadLetters`, ...) come flat, from EventCounts (shared/counts.py).
    """

    bot_id: str
    state: ConnState
    connected_at: str | None = None
    last_heartbeat: str | None = None
    error: str | None = None
    error_code: int | str | None = None
    """The platform's code, or "internal" when the supervisor contained a bug of its own."""
    pid: int | None = None
    restarts: int = 0
    attempt: int = 0
    next_retry_at: str | None = None
    flapping: bool = False
    private_bytes: int = 0
    owner: str | None = None
    node: str | None = None
    """The node running the bot's worker (cluster mode: the lease holder); null when none."""


class BotMetrics(msgspec.Struct, kw_only=True):
    """One bot's event counts and latencies since the supervisor started, for /metrics.

    Unlike the status counts (one worker incarnation's), these add up every
    incarnation, so the exported Prometheus counters never go back on a restart.
    """

    bot_id: str
    counts: EventCounts = msgspec.field(default_factory=EventCounts)
    ack_latency: Histogram = msgspec.field(default_factory=Histogram)
    reply_latency: Histogram = msgspec.field(default_factory=Histogram)

    def plus(self, report: Heartbeat) -> "BotMetrics":
        """These totals with one incarnation's heartbeat added."""
        return BotMetrics(
            bot_id=self.bot_id,
            counts=self.counts.plus(report.counts),
            ack_latency=self.ack_latency.plus(report.ack_latency),
            reply_latency=self.reply_latency.plus(report.reply_latency),
        )
