"""The supervision policy as pure functions: what to do next, from what is and what is wished.

`decide` looks at one bot (its phase, the wish, whether a worker process
exists, its deadlines, the time) and returns the one action to take, or None.
`after_exit` says which phase a worker's exit leads to. Neither touches a
process, a socket or a clock: the supervisor's loop applies what they return,
and tests walk every phase x event through them without forking anything.
"""

from dataclasses import dataclass
from enum import StrEnum

from shared import exitcodes
from supervisor.lifecycle import Phase


@dataclass(frozen=True)
class View:
    """What the policy sees of one bot. Times are monotonic seconds."""

    phase: Phase
    keep: bool
    """The wish: a worker should run (wanted, not being deleted)."""
    deleting: bool
    retry_now: bool
    """Connect was asked since the last start: no waiting in BACKOFF or FATAL."""
    has_process: bool
    stale_config: bool
    """The last worker ran (or the running one runs) an older config than the store holds:
    a PATCH since the last start. In BACKOFF or FATAL it is a reason to start at once,
    as a connect is (the new config may be the fix, or a switch to webhook mode)."""
    ready: bool
    """The zygote can fork."""
    shutting_down: bool = False
    started_mono: float = 0.0
    alive_mono: float = 0.0
    stop_deadline_mono: float = 0.0
    retry_mono: float = 0.0


@dataclass(frozen=True)
class Timeouts:
    start: float
    """Fork to Hello."""
    heartbeat: float
    """Silence of a running worker before it is declared hung."""


@dataclass(frozen=True)
class TaskView:
    """The kernel's view of a worker's event-loop thread (supervisor/procview.py reads it)."""

    state: str
    """The state letter of /proc/<pid>/task/<tid>/stat (proc(5)): S sleeping, R running,
    T/t stopped, D disk sleep, Z zombie."""
    syscall: str
    """The first field of /proc/<pid>/task/<tid>/syscall (proc(5)): the number of the
    system call the thread is blocked in, "-1" when blocked outside one, "running"."""


PROBE_LEAD_S = 1.0
"""How long before its heartbeat deadline a silent worker's loop is looked at in /proc:
once a tick (0.25 s) until a look proves it alive or the deadline passes, so a healthy
idle worker caught on the CPU at one look is not taken for hung."""


def loop_waits_for_io(task: TaskView | None, epoll_waits: frozenset[int]) -> bool:
    """True when `task` shows the loop's thread asleep in an epoll wait: proof of life.

    An asyncio loop with nothing to do sleeps in epoll_wait (or epoll_pwait/epoll_pwait2,
    by architecture and libc: `epoll_waits`); one that is blocked by a handler sleeps in
    another call (a read, a futex, a nanosleep) or runs (R), and a stopped one (SIGSTOP)
    is T even when its saved call number still says epoll_wait, so the state is read too.
    None (the view could not be read) proves nothing.
    """
    if task is None or task.state != "S":
        return False
    try:
        return int(task.syscall) in epoll_waits
    except ValueError:
        return False


def wants_look(phase: Phase, has_process: bool, alive_mono: float, timeouts: Timeouts,
               now_mono: float) -> bool:
    """A running worker's beat is late enough (within PROBE_LEAD_S of its heartbeat
    deadline) that its loop should be looked at before `decide` calls it hung. (Plain
    fields, not a `View`: asked for every idle bot every few seconds.)"""
    return (phase == Phase.RUNNING and has_process
            and now_mono - alive_mono > timeouts.heartbeat - look_lead(timeouts))


def look_lead(timeouts: Timeouts) -> float:
    """Seconds before the heartbeat deadline that looks start (PROBE_LEAD_S, at most half
    the timeout)."""
    return min(PROBE_LEAD_S, timeouts.heartbeat / 2)


class Verb(StrEnum):
    START = "start"
    """Fork a new incarnation (phase -> STARTING)."""
    STOP = "stop"
    """Ask the worker to stop (phase -> STOPPING, SIGKILL after the grace)."""
    KILL = "kill"
    """SIGKILL the worker now; its exit is handled by `after_exit`."""
    HALT = "halt"
    """No process to stop: BACKOFF or FATAL -> STOPPED."""
    FORGET = "forget"
    """The bot is deleted and has no process left: drop it."""


@dataclass(frozen=True)
class Action:
    verb: Verb
    why: str


def decide(view: View, timeouts: Timeouts, now_mono: float) -> Action | None:
    """The next action for one bot, or None when it is where it should be."""
    phase = view.phase
    if phase == Phase.STOPPED:
        if view.deleting:
            return Action(Verb.FORGET, "bot deleted")
        if view.keep and view.ready:
            return Action(Verb.START, "connect requested" if view.retry_now else "wanted")
        return None
    if phase in (Phase.BACKOFF, Phase.FATAL):
        if not view.keep:
            return Action(Verb.HALT, _why_not_kept(view))
        if view.retry_now:
            return Action(Verb.START, "connect requested")
        if view.stale_config and view.ready:
            return Action(Verb.START, "config changed")
        if phase == Phase.BACKOFF and now_mono >= view.retry_mono and view.ready:
            return Action(Verb.START, "retry")
        return None
    if phase in (Phase.STARTING, Phase.RUNNING):
        if not view.keep:
            return Action(Verb.STOP, _why_not_kept(view))
        if view.stale_config:
            return Action(Verb.STOP, "config changed")
        if not view.has_process:
            return None
        if phase == Phase.STARTING and now_mono - view.started_mono > timeouts.start:
            return Action(Verb.KILL, f"no hello within {timeouts.start:g} s")
        if phase == Phase.RUNNING and now_mono - view.alive_mono > timeouts.heartbeat:
            silence = now_mono - view.alive_mono  # what was measured, not the bound
            return Action(Verb.KILL,
                          f"no heartbeat for {silence:.1f} s (timeout {timeouts.heartbeat:g} s)")
        return None
    # STOPPING
    if view.has_process and now_mono > view.stop_deadline_mono:
        return Action(Verb.KILL, "did not stop within the grace period")
    return None


def _why_not_kept(view: View) -> str:
    if view.deleting:
        return "bot deleted"
    return "shutdown" if view.shutting_down else "disconnect requested"


@dataclass(frozen=True)
class Exit:
    """Where a worker's exit leads."""

    phase: Phase
    why: str
    failure: bool
    """Counts as a failure: restarts + 1 and a backoff delay."""


def after_exit(phase: Phase, code: int | None, why: str | None = None) -> Exit:
    """The phase after the worker of a bot in `phase` ended with `code` (None: unknown).

    `why` overrides the reason (a fork that failed, a kill for a missed deadline).
    A worker told to stop ends in STOPPED whatever its code; the reconciler
    starts a new one if the wish says so (a restart is stop, then start).
    """
    if phase == Phase.STOPPING:
        return Exit(Phase.STOPPED, "worker stopped", failure=False)
    if phase == Phase.FATAL:
        return Exit(Phase.FATAL, why or "worker ended after a fatal error", failure=False)
    if code == exitcodes.PERMANENT:
        return Exit(Phase.FATAL, why or "the platform refused the bot permanently", False)
    return Exit(Phase.BACKOFF, why or f"worker exited with code {code}", failure=True)
