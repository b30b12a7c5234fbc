"""Prometheus metrics built at scrape time from the fleet's live status of every bot.

A custom Collector instead of module-level counters: the numbers live in the
workers' heartbeats, so each scrape reads them fresh and nothing has to be
kept in step. Counters and histograms come from Fleet.metrics, which adds up
every worker incarnation, so they never go back when a worker restarts.
Labels are bot ids and states only, never names or secrets.
"""

from collections import Counter
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api.fleet import Fleet
from shared.messages import ACK_BUCKETS, REPLY_BUCKETS, Histogram
from shared.states import ConnState
from store import Store

COUNTERS = [
    ("larkfleet_bot_events_received", "Distinct events spooled", "events_received"),
    ("larkfleet_bot_events_handled", "Events finished: replied, no reply or ignored",
     "events_handled"),
    ("larkfleet_bot_events_failed", "Failed attempts at an event (each retry counts)",
     "events_failed"),
    ("larkfleet_bot_replies_sent", "Replies sent", "replies_sent"),
    ("larkfleet_bot_replies_dropped",
     "Answers dropped: the message to answer was withdrawn or deleted, or the event"
     " named no chat to answer in",
     "replies_dropped"),
]
HISTOGRAMS = [
    ("larkfleet_bot_ack_latency_seconds",
     "Time inside the SDK callback (the spool write), which delays the ACK",
     "ack_latency", ACK_BUCKETS),
    ("larkfleet_bot_reply_latency_seconds", "Event spooled to reply accepted by the platform",
     "reply_latency", REPLY_BUCKETS),
]
GAUGES = [
    ("larkfleet_bot_pending", "Spooled events not yet handled", "pending"),
    ("larkfleet_bot_dead_letters", "Events given up on", "dead_letters"),
    ("larkfleet_bot_private_bytes",
     "Worker private memory (USS: pages not shared with the zygote), first read a minute "
     "after the worker starts (0 until then), resampled each minute while the worker "
     "works, every 10 minutes at rest",
     "private_bytes"),
]


def _buckets(histogram: Histogram, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Prometheus' cumulative `le` buckets; a worker that never reported counts zeros."""
    counts = histogram.buckets or [0] * (len(bounds) + 1)
    cumulative = list(accumulate(counts))
    return [(repr(b), c) for b, c in zip(bounds, cumulative, strict=False)] + [
        ("+Inf", cumulative[-1])
    ]


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet, registry: Store) -> None:
        self._fleet = fleet
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        bot_ids = [bot_id for bot_id, _ in self._registry.bot_ids()]
        statuses = [self._fleet.status(bot_id) for bot_id in bot_ids]
        totals = [self._fleet.metrics(bot_id) for bot_id in bot_ids]
        by_state = Counter(s.state for s in statuses)
        bots = GaugeMetricFamily("larkfleet_bots", "Bots by connection state", labels=["state"])
        for state in ConnState:
            bots.add_metric([state.value], by_state.get(state, 0))
        yield bots

        node = GaugeMetricFamily("larkfleet_node_bots",
                                 "Bots whose worker this node runs (cluster mode: leases held)",
                                 labels=["node"])
        node_id = self._fleet.node_id
        node.add_metric([node_id], sum(1 for s in statuses if s.node == node_id))
        yield node

        restarts = CounterMetricFamily("larkfleet_bot_restarts", "Worker restarts",
                                       labels=["bot_id"])
        for status in statuses:
            restarts.add_metric([status.bot_id], status.restarts)
        yield restarts

        for name, doc, field in COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=["bot_id"])
            for total in totals:
                counter.add_metric([total.bot_id], getattr(total.counts, field))
            yield counter

        for name, doc, field, bounds in HISTOGRAMS:
            family = HistogramMetricFamily(name, doc, labels=["bot_id"])
            for total in totals:
                histogram: Histogram = getattr(total, field)
                family.add_metric([total.bot_id], _buckets(histogram, bounds), histogram.sum)
            yield family

        for name, doc, field in GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["bot_id"])
            for status in statuses:
                gauge.add_metric([status.bot_id], getattr(status, field))
            yield gauge

        connected = GaugeMetricFamily("larkfleet_bot_connected",
                                      "1 while the bot's connection is up", labels=["bot_id"])
        for status in statuses:
            connected.add_metric([status.bot_id], int(status.state == ConnState.CONNECTED))
        yield connected
