"""The event path's counters, reported in every heartbeat."""

from bisect import bisect_left
from dataclasses import dataclass, field

from shared.counts import EventCounts
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

    `counts` is the shared counter set the heartbeat carries (shared/counts.py);
    the rest stays in the worker: duplicates (counted apart from
    `counts.events_received`), messages sent through the API, the last event's
    wall-clock time and the latency histograms.
    """

    counts: EventCounts = field(default_factory=EventCounts)
    last_event_epoch: float | None = None
    duplicates: int = 0
    messages_sent: int = 0
    ack_latency: Latencies = field(default_factory=lambda: Latencies(ACK_BUCKETS))
    reply_latency: Latencies = field(default_factory=lambda: Latencies(REPLY_BUCKETS))
