"""The per-bot lifecycle: one state enum and one transition table.

Modelled on supervisord's process states: every change goes through
`Lifecycle.change`, which refuses a transition the table does not list, so an
impossible sequence of events shows up as an error instead of a silent
inconsistency. The API's `state` field is derived from this state plus what
the worker last reported (see `supervisor.status`).
"""

import logging
from collections.abc import Callable
from enum import StrEnum

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where the supervisor is with a bot's worker process."""

    STOPPED = "stopped"
    """No worker, none wanted (or not yet asked for)."""
    STARTING = "starting"
    """Forked; waiting for its Hello under the start timeout."""
    RUNNING = "running"
    """Hello heard; the heartbeat clock runs."""
    BACKOFF = "backoff"
    """The worker ended for a transient reason; a restart is scheduled."""
    STOPPING = "stopping"
    """Told to stop; waits for the exit, SIGKILL after the grace period."""
    FATAL = "fatal"
    """The platform refused for good; no retries until connect is asked again."""


ALIVE = frozenset({Phase.STARTING, Phase.RUNNING, Phase.STOPPING})
"""Phases in which a worker process exists."""

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.STOPPED: frozenset({Phase.STARTING, Phase.FATAL}),
    Phase.STARTING: frozenset({Phase.RUNNING, Phase.BACKOFF, Phase.FATAL, Phase.STOPPING}),
    Phase.RUNNING: frozenset({Phase.BACKOFF, Phase.FATAL, Phase.STOPPING}),
    Phase.BACKOFF: frozenset({Phase.STARTING, Phase.STOPPED, Phase.FATAL}),
    Phase.STOPPING: frozenset({Phase.STOPPED, Phase.FATAL}),
    Phase.FATAL: frozenset({Phase.STARTING, Phase.STOPPED}),
}
"""Legal moves. A restart is STOPPING -> STOPPED -> STARTING; FATAL is reachable from
every other phase because a bug contained in one bot's step parks it there."""


class IllegalTransition(RuntimeError):
    pass


class Lifecycle:
    """The phase of one bot, changed only through the transition table."""

    def __init__(self, bot_id: str) -> None:
        self.bot_id = bot_id
        self.phase = Phase.STOPPED
        self.listener: Callable[[str], None] | None = None
        """Called with the reason after every change (the supervisor announces it)."""

    def can(self, target: Phase) -> bool:
        return target in TRANSITIONS[self.phase]

    def change(self, target: Phase, reason: str) -> None:
        """Move to `target`, announcing it; raises IllegalTransition if not allowed."""
        if not self.can(target):
            raise IllegalTransition(f"{self.bot_id}: {self.phase} -> {target} ({reason})")
        logger.info("bot %s: %s -> %s (%s)", self.bot_id, self.phase, target, reason)
        self.phase = target
        if self.listener is not None:
            self.listener(reason)
