"""What the supervisor knows about one bot: its lifecycle, worker and last report."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from multiprocess.process import BaseProcess

from shared.messages import Heartbeat, worker_identity
from shared.states import ConnState
from shared.status import BotMetrics, BotStatus
from supervisor.backoff import Backoff, BackoffPolicy
from supervisor.lifecycle import Lifecycle, Phase


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC, the API's time format."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass
class ManagedBot:
    """One bot under supervision. Monotonic times end in `_at`, wall times in `_wall`."""

    bot_id: str
    owner: str
    wanted: bool
    webhook_mode: bool
    policy: BackoffPolicy
    lifecycle: Lifecycle = field(init=False)
    backoff: Backoff = field(init=False)
    process: BaseProcess | None = None
    incarnation: int = 0
    pid: int | None = None
    started_at: float = 0.0
    last_heard_at: float = 0.0
    last_heartbeat_wall: float | None = None
    stop_deadline_at: float = 0.0
    retry_at: float = 0.0
    retry_wall: float | None = None
    connected_since_at: float | None = None
    report: Heartbeat | None = None
    error: str | None = None
    error_code: int | None = None
    restarts: int = 0
    announced: tuple[Phase, ConnState] | None = None
    """(phase, API state) of the last change record published about this bot."""
    announced_counters: tuple[int, int, int, int] = (0, 0, 0, 0)
    carried: BotMetrics = field(init=False)
    """The final counts of every earlier incarnation of the worker."""

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
            bot_id=self.bot_id,
            state=state,
            connected_at=iso(report.connected_at) if report and state == "connected" else None,
            last_heartbeat=iso(self.last_heartbeat_wall),
            error=self.error,
            error_code=self.error_code,
            pid=self.pid if self.process is not None else None,
            restarts=self.restarts,
            attempt=self.backoff.attempt,
            next_retry_at=iso(self.retry_wall) if self.phase == Phase.BACKOFF else None,
            events_received=report.events_received if report else 0,
            replies_sent=report.replies_sent if report else 0,
            pending=report.pending if report else 0,
            dead_letters=report.dead_letters if report else 0,
            flapping=self.backoff.flapping,
            private_bytes=report.private_bytes if report else 0,
        )

    def counters(self) -> tuple[int, int, int, int]:
        """(events received, replies sent, pending, dead letters) of the current worker."""
        report = self.report
        if report is None:
            return (0, 0, 0, 0)
        return (report.events_received, report.replies_sent, report.pending, report.dead_letters)

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

    def heard(self, now: float) -> None:
        self.last_heard_at = now

    def took(self, report: Heartbeat, now: float) -> None:
        """Keep the latest heartbeat; count uptime toward resetting the backoff."""
        self.report = report
        self.last_heartbeat_wall = time.time()
        if report.state == ConnState.CONNECTED:
            if self.connected_since_at is None:
                self.connected_since_at = now
                self.error = None
                self.error_code = None
            self.backoff.connected_for(now - self.connected_since_at)
        else:
            self.connected_since_at = None
