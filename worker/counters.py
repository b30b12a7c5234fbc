"""The event path's counters, reported in every heartbeat."""

from dataclasses import dataclass


@dataclass
class Counters:
    """Current numbers for the status API.

    events_received counts distinct events (duplicates are counted apart),
    pending and dead_letters mirror the spool rows.
    """

    events_received: int = 0
    replies_sent: int = 0
    pending: int = 0
    dead_letters: int = 0
    last_event_at: float | None = None
    duplicates: int = 0
    messages_sent: int = 0
