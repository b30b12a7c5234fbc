"""What the supervisor knows about one bot: the wish, its lifecycle, worker and last report.

Times name their clock by suffix (`_mono`, `_epoch`: shared/clocks.py). One word for
"state" per layer: `phase` is the supervisor's (supervisor.lifecycle.Phase), `report.state`
the connection state the worker reports (ConnState), and `api_state()` the API's (ConnState,
derived from both).
"""

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from shared.clocks import IsoMemo, iso
from shared.counts import EventCounts
from shared.messages import Heartbeat, worker_identity
from shared.states import ConnState
from shared.status import BotMetrics, BotStatus
from supervisor.backoff import Backoff, BackoffPolicy
from supervisor.lifecycle import ALIVE, Lifecycle, Phase
from supervisor.ports import Worker

INTERNAL = "internal"
"""The error code of a bot whose supervision step raised (a bug, contained to that bot)."""


@dataclass
class ManagedBot:
    """One bot under supervision: the wish (what the user asked), and what is."""

    bot_id: str
    owner: str
    wanted: bool
    """The wish: keep a worker (asked to connect, or webhook mode)."""
    webhook_mode: bool
    policy: BackoffPolicy
    deleting: bool = False
    """The wish: the bot is being deleted; commands on it answer 404."""
    retry_now: bool = False
    """Connect was asked: leave BACKOFF or FATAL at once instead of at the retry time."""
    config_version: int = 0
    """Bumped on every PATCH; a worker started on an older version is restarted."""
    worker_config_version: int = 0
    lifecycle: Lifecycle = field(init=False)
    backoff: Backoff = field(init=False)
    worker: Worker | None = None
    incarnation: int = 0
    pid: int | None = None
    loop_tid: int = 0
    """The thread running the worker's event loop, from its Hello (0: not told: never
    looked at in /proc)."""
    started_mono: float = 0.0
    alive_mono: float = 0.0
    """When the current worker last showed it is alive: the hang timeout counts from here."""
    heartbeat_epoch: float | None = None
    stop_deadline_mono: float = 0.0
    retry_mono: float = 0.0
    retry_epoch: float | None = None
    connected_since_mono: float | None = None
    connected_this_run: bool = False
    """The current (or last) worker reached `connected`: its end counts toward flapping."""
    report: Heartbeat | None = None
    error: str | None = None
    error_code: int | str | None = None
    restarts: int = 0
    announced: tuple[Phase, ConnState] | None = None
    """(phase, API state) of the last change record published about this bot."""
    announced_counts: EventCounts = field(default_factory=EventCounts)
    carried: BotMetrics = field(init=False)
    """The final counts of every earlier incarnation of the worker."""
    commands: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises the API's commands on this bot (connect, disconnect, patch, delete)."""
    _connected_iso: IsoMemo = field(default_factory=IsoMemo, repr=False)
    _heartbeat_iso: IsoMemo = field(default_factory=IsoMemo, repr=False)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.bot_id)
        self.backoff = Backoff(self.policy)
        self.carried = BotMetrics(bot_id=self.bot_id)

    @property
    def phase(self) -> Phase:
        return self.lifecycle.phase

    @property
    def identity(self) -> bytes:
        return worker_identity(self.bot_id, self.incarnation)

    @property
    def keep(self) -> bool:
        """A worker should run: wanted and not being deleted."""
        return self.wanted and not self.deleting

    def api_state(self) -> ConnState:
        """The API's state: the supervisor's phase, refined by what the worker reported."""
        match self.phase:
            case Phase.STOPPED | Phase.STOPPING:
                return ConnState.DISCONNECTED
            case Phase.FATAL:
                return ConnState.ERROR
            case Phase.BACKOFF:
                return ConnState.RECONNECTING
            case Phase.STARTING:
                return ConnState.WEBHOOK if self.webhook_mode else ConnState.CONNECTING
        if self.report is None:
            return ConnState.WEBHOOK if self.webhook_mode else ConnState.CONNECTING
        return self.report.state

    def to_status(self) -> BotStatus:
        report = self.report
        state = self.api_state()
        return BotStatus(
            **msgspec.structs.asdict(self.counts()),
            bot_id=self.bot_id,
            state=state,
            connected_at=(self._connected_iso(report.connected_epoch)
                          if report and state == "connected" else None),
            last_heartbeat=self._heartbeat_iso(self.heartbeat_epoch),
            error=self.error,
            error_code=self.error_code,
            pid=self.pid if self.phase in ALIVE else None,
            restarts=self.restarts,
            attempt=self.backoff.attempt,
            next_retry_at=iso(self.retry_epoch) if self.phase == Phase.BACKOFF else None,
            flapping=self.backoff.flapping,
            private_bytes=report.private_bytes if report else 0,
        )

    def counts(self) -> EventCounts:
        """The current worker incarnation's event counts (zeros before its first report)."""
        return self.report.counts if self.report is not None else EventCounts()

    def to_metrics(self) -> BotMetrics:
        """Totals across incarnations: what earlier workers counted plus the current one."""
        if self.report is None:
            return self.carried
        return self.carried.plus(self.report)

    def retire_report(self) -> None:
        """A new incarnation starts from zero: keep the old one's last counts in `carried`.

        Whatever the old worker counted after its last heartbeat (at most one
        interval) is lost; the counters stay monotonic.
        """
        if self.report is not None:
            self.carried = self.carried.plus(self.report)
            self.report = None

    def forget_trouble(self) -> None:
        """A fresh start asked by the user: no old error, no flapping hold, no retry count."""
        self.error = self.error_code = None
        self.backoff.reset()

    def seen_alive(self, now_mono: float) -> None:
        """Any word from the current worker (a message or a beat) proves it alive now."""
        self.alive_mono = now_mono

    def beat_seen(self, now_mono: float) -> None:
        """The worker's liveness counter moved: alive, and (when connected) its uptime
        counts toward resetting the backoff, as no report comes while nothing changes."""
        self.seen_alive(now_mono)
        self.heartbeat_epoch = time.time()
        if self.connected_since_mono is not None:
            self.backoff.connected_for(now_mono - self.connected_since_mono)

    def keep_report(self, report: Heartbeat, now_mono: float) -> None:
        """Keep the latest report; count uptime toward resetting the backoff."""
        self.report = report
        self.heartbeat_epoch = time.time()
        if report.state == ConnState.CONNECTED:
            if self.connected_since_mono is None:
                self.connected_since_mono = now_mono
                self.connected_this_run = True
                self.backoff.connected()
                self.error = None
                self.error_code = None
            self.backoff.connected_for(now_mono - self.connected_since_mono)
        else:
            self.connected_since_mono = None
