"""Prometheus metrics built at scrape time from the fleet's live status of every bot.

A custom Collector instead of module-level counters: the numbers live in the
workers' heartbeats, so each scrape reads them fresh and nothing has to be
kept in step. Labels are bot ids and states only, never names or secrets.
"""

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.fleet import Fleet
from shared.states import ConnState
from supervisor.registry import Registry


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet, registry: Registry) -> None:
        self._fleet = fleet
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        statuses = [self._fleet.status(bot_id) for bot_id, _ in self._registry.bot_ids()]
        by_state = Counter(s.state for s in statuses)
        bots = GaugeMetricFamily("larkfleet_bots", "Bots by connection state", labels=["state"])
        for state in ConnState:
            bots.add_metric([state.value], by_state.get(state, 0))
        yield bots

        per_bot = [
            (CounterMetricFamily, "larkfleet_bot_restarts", "Worker restarts", "restarts"),
            (CounterMetricFamily, "larkfleet_bot_events_received", "Events received",
             "events_received"),
            (CounterMetricFamily, "larkfleet_bot_replies_sent", "Replies sent", "replies_sent"),
            (GaugeMetricFamily, "larkfleet_bot_pending", "Spooled events not yet handled",
             "pending"),
            (GaugeMetricFamily, "larkfleet_bot_dead_letters", "Events given up on",
             "dead_letters"),
            (GaugeMetricFamily, "larkfleet_bot_rss_bytes", "Worker resident memory", "rss_bytes"),
        ]
        for family, name, doc, field in per_bot:
            metric = family(name, doc, labels=["bot_id"])
            for status in statuses:
                metric.add_metric([status.bot_id], getattr(status, field))
            yield metric

        connected = GaugeMetricFamily("larkfleet_bot_connected",
                                      "1 while the bot's connection is up", labels=["bot_id"])
        for status in statuses:
            connected.add_metric([status.bot_id], int(status.state == ConnState.CONNECTED))
        yield connected
