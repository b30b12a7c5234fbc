"""The per-bot event counter set: the one definition every side uses.

A worker counts into it (worker/counters.py), its heartbeat carries it
(shared/messages.py), the supervisor keeps the latest and the sum of every
incarnation (supervisor/bot.py), the status API shows it flat under the
names of architecture.md (`eventsReceived`, `repliesSent`, `pending`,
`deadLetters`, ...; shared/status.py) and /metrics exports it (api/metrics.py).
A new counter is added here once and reaches every one of them.
"""

import msgspec


class EventCounts(msgspec.Struct, rename="camel", kw_only=True):
    """One worker incarnation's event counts, from zero at its start.

    The counters only grow during an incarnation; `pending` and `dead_letters`
    are gauges that mirror the spool's rows (they start at what the spool holds).
    """

    events_received: int = 0
    """Distinct events spooled (a redelivered duplicate is not counted again)."""
    replies_sent: int = 0
    """Replies the platform accepted."""
    pending: int = 0
    """Gauge: spooled events not yet finished."""
    dead_letters: int = 0
    """Gauge: events given up on, kept for a retry by hand."""
    events_handled: int = 0
    """Events finished: replied, answered with nothing, or ignored."""
    events_failed: int = 0
    """Failed attempts at an event, each retry counted."""
    replies_dropped: int = 0
    """Answers not sent: the message to answer was gone (withdrawn, deleted), or the
    event named no chat to answer in."""

    def plus(self, later: "EventCounts") -> "EventCounts":
        """These counts followed by a later incarnation's: the counters add up, the
        gauges (`pending`, `dead_letters`) are the later one's."""
        return EventCounts(
            events_received=self.events_received + later.events_received,
            replies_sent=self.replies_sent + later.replies_sent,
            pending=later.pending,
            dead_letters=later.dead_letters,
            events_handled=self.events_handled + later.events_handled,
            events_failed=self.events_failed + later.events_failed,
            replies_dropped=self.replies_dropped + later.replies_dropped,
        )

    def copy(self) -> "EventCounts":
        """A snapshot the owner may go on counting past."""
        return msgspec.structs.replace(self)
