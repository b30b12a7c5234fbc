"""The supervisor's tunables, with the defaults architecture.md names.

supervisor/config.py fills them from the config file and the environment;
tests shrink timeouts that way, without a different code path.
"""

from dataclasses import dataclass, field

from api.inflight import WEBHOOK_MAX_INFLIGHT
from shared.security import SecurityPolicy
from supervisor.backoff import BackoffPolicy

BEATS_PER_TIMEOUT = 2.0
"""Worker liveness beats per heartbeat timeout (see `SupervisorSettings.beat_interval`)."""
IDLE_BEAT_S = 30.0
"""Beat period of an idle worker whose loop the supervisor can see waiting in /proc
(see `SupervisorSettings.beat_intervals`)."""


@dataclass(frozen=True)
class SupervisorSettings:
    heartbeat_timeout: float = 5.0
    """No message from a running worker for this long: SIGKILL and restart."""
    start_timeout: float = 30.0
    """Fork to Hello: long, so 200 workers booting on 2 cores are not killed for slowness."""
    stop_grace: float = 10.0
    """Stop to SIGKILL, for one worker and for the whole fleet at shutdown."""
    tick: float = 0.25
    """How often deadlines and the workers' liveness beats are checked, and the
    supervisor's own beat is given (shared/liveness_board.py)."""
    request_timeout: float = 15.0
    """How long an API call waits for a worker's answer (webhook delivery, send)."""
    webhook_max_inflight: int = WEBHOOK_MAX_INFLIGHT
    """Webhook deliveries per bot handled at once; past it the route answers 503."""
    endpoint_timeout: float = 10.0
    """Bound on the SDK's endpoint discovery, which has no timeout of its own."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    worker_log_level: str = "INFO"
    event_max_attempts: int = 5
    """Handler attempts before an event becomes a dead letter (handed to workers)."""
    event_retry_base: float = 1.0
    """First retry delay of a failed event, doubling per attempt (handed to workers)."""
    proxy: str = ""
    """Proxy for every bot's platform connections, WebSocket included: "" follows
    HTTPS_PROXY/HTTP_PROXY/NO_PROXY, `direct` uses none, or a proxy URL (handed to
    workers; a bot's `options.proxy` wins)."""
    lease_ttl: float = 8.0
    """Cluster mode: a bot's lease lasts this long past its holder's last renewal."""
    lease_renew_interval: float = 2.0
    """Cluster mode: renewal (and planning) rhythm of every node."""
    lease_margin: float = 3.0
    """Cluster mode: a node that could not renew stops its workers this long before lapse."""
    lease_max_moves: int = 4
    """Cluster mode: bots one node hands over per round when rebalancing after a join."""
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    """The operator's `[security]` table; each worker gets it made for its bot's owner."""

    @property
    def beat_interval(self) -> float:
        """Seconds between a worker's liveness beats: 2.5 s with the default 5 s timeout.

        Each beat wakes an otherwise idle process, about 0.1 ms of CPU (measured with
        300 idle workers), paid by every worker: at 1 s, 1,000 idle workers kept ~12 %
        of a core busy just beating, at 2 s ~5 % (bench/NOTES.md). A hung worker is
        found at its last beat seen plus the timeout whatever the interval (the stop
        falls after that beat), so a longer interval does not slow hang detection; what
        it takes is slack: a healthy worker's beat may come one interval (2.5 s) late
        before it is taken for hung. Its beat is a timer on its event loop, late only
        when that loop is blocked or the process gets no CPU for that long; scheduling
        delays on a loaded 2-core host are tens of milliseconds.
        """
        return self.heartbeat_timeout / BEATS_PER_TIMEOUT

    def beat_intervals(self, loop_visible: bool) -> tuple[float, float]:
        """(beat period while the worker does something, beat period once idle).

        An idle worker's loop sleeps in epoll_wait, and a loop asleep there is not hung:
        where the supervisor can read that from /proc (`loop_visible`, decided once at
        start-up: supervisor/procview.py), it asks before calling a late beat a hang, so
        an idle worker need not wake to prove itself alive. Its beat then comes every
        IDLE_BEAT_S (30 s) instead of every `beat_interval` (2.5 s): the beat's wakes,
        0.4 a second per idle worker, were what slowed a busy bot among 1,000 idle ones
        (bench/NOTES.md, "Busy bot among 1,000 idle"). What the slow beat still does: it
        checks the supervisor's own beat (a hung supervisor is left within 30 s, not 3 s;
        a dead one within 1 s through the parent-death signal, as before), resamples the
        private memory at rest, and reports figures that changed without activity.
        Where /proc cannot tell, both periods are `beat_interval`, as before.
        """
        fast = self.beat_interval
        return fast, (max(fast, IDLE_BEAT_S) if loop_visible else fast)
