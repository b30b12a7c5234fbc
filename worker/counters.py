"""The event path's counters, reported in every heartbeat."""

from bisect import bisect_left
from dataclasses import dataclass, field

from shared.messages import ACK_BUCKETS, REPLY_BUCKETS, Histogram


@dataclass(slots=True)
class Latencies:
    """A fixed-bucket histogram cheap enough for the ACK path.

    Recording is one bisect, one list increment and one float add, so
    EventPipeline.accept can time every ACK with it.
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> Histogram:
        """A copy for the heartbeat; the count is derived here, off the hot path."""
        counts = list(self.counts)
        return Histogram(buckets=counts, sum=self.sum, count=sum(counts))


@dataclass
class Counters:
    """Current numbers for the status API and the metrics.

    events_received counts distinct events (duplicates are counted apart),
    pending and dead_letters mirror the spool rows. events_handled counts
    events finished (replied, answered with nothing or ignored),
    events_failed every failed attempt, retried or not.
    """

    events_received: int = 0
    replies_sent: int = 0
    pending: int = 0
    dead_letters: int = 0
    last_event_at: float | None = None
    duplicates: int = 0
    messages_sent: int = 0
    events_handled: int = 0
    events_failed: int = 0
    replies_dropped: int = 0
    """Answers not sent: the message to answer was gone (withdrawn, deleted), or the
    event named no chat to answer in."""
    ack_latency: Latencies = field(default_factory=lambda: Latencies(ACK_BUCKETS))
    reply_latency: Latencies = field(default_factory=lambda: Latencies(REPLY_BUCKETS))
