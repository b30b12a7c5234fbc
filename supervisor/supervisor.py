"""The Supervisor: one reconciler owns every worker and decides every start, stop and kill.

API calls and signals only record the wish (in the store and in the bot's
in-memory model, here, in one place) and wake the loop. The loop asks the pure
policy (supervisor.policy) what each bot needs, from its phase, wish, process
and deadlines, and applies the answer. Worker exits and messages are events
that move a bot's phase through its Lifecycle; every change is announced once
as a change record (shared.changes) that waiters, the log and streams hear.

The operating system (zygote, control channel, clocks) comes in through
supervisor.ports, so the whole policy runs against a fake in tests.

Containment: an exception in one bot's step is logged with the bot id and
parks that bot in `error` with code `internal`; the loop, the router and every
other bot carry on. Background tasks' failures are always logged.
"""

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shared import results
from shared.changes import DEFAULT_QUEUE, Change, ChangeFeed, ChangeKind, Subscription
from shared.logs import redactor
from shared.messages import (
    NO_WORKER,
    Answered,
    Deliver,
    DeliverResult,
    FromWorker,
    Heartbeat,
    Hello,
    Reply,
    Request,
    RetryDeadLetter,
    RetryResult,
    Send,
    SendResult,
    StateChanged,
    Stop,
    WorkerSpec,
    failed_reply,
)
from shared.paths import DataPaths
from shared.states import ConnState
from shared.status import BotMetrics, BotStatus
from store import NotFound, Store
from supervisor.bot import INTERNAL, ManagedBot
from supervisor.lifecycle import ALIVE, Phase
from supervisor.liveness import LivenessMonitor
from supervisor.placement import AnswerKeys, Placement, SingleNode, default_node_id
from supervisor.policy import (
    Action,
    Timeouts,
    Verb,
    View,
    after_exit,
    decide,
    wants_look,
)
from supervisor.ports import (
    Channel,
    Clock,
    LoopProbe,
    Processes,
    SystemClock,
    Worker,
    ZygoteProcesses,
)
from supervisor.procview import ProcLoopProbe
from supervisor.requests import PendingRequests
from supervisor.router import Router
from supervisor.settings import SupervisorSettings
from worker.spool import mark_answered, read_answered

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Reply)

FULL_PASS_S = 1.0
"""In cluster mode, timer ticks between full passes skip bots running with a fresh beat
(see `_reconcile`); on one host every timer tick skips them."""

LEASE_STOP_GRACE = 1.0
"""Seconds a worker gets to stop when its lease is lost; inside the lease margin."""


class CommandTimeout(TimeoutError):
    """A command's wait for the bot to reach the wished state passed its bound."""


class Supervisor:
    def __init__(
        self,
        paths: DataPaths,
        store: Store,
        settings: SupervisorSettings,
        placement: Placement | None = None,
        *,
        processes: Processes | None = None,
        channel: Channel | None = None,
        clock: Clock | None = None,
        loops: LoopProbe | None = None,
    ) -> None:
        """`processes`, `channel`, `clock` and `loops` default to the real zygote, router,
        time and /proc; `placement` to one host (every bot may run here)."""
        self.paths = paths
        self.store = store
        self.settings = settings
        self.placement: Placement = placement or SingleNode(default_node_id())
        """Where bots may run: always here on one host, by lease in cluster mode."""
        self.node_id = self.placement.node_id
        self._processes = processes or ZygoteProcesses()
        self._channel = channel or Router(paths.control_socket)
        self._clock = clock or SystemClock()
        self._loops = loops or ProcLoopProbe()
        self._loops_visible = False
        """Decided once at start-up: /proc shows whether a worker's loop waits for I/O."""
        self._beats = settings.beat_intervals(loop_visible=False)
        self._timeouts = Timeouts(settings.start_timeout, settings.heartbeat_timeout)
        self._bots: dict[str, ManagedBot] = {}
        self._incarnations = itertools.count(int(self._clock.epoch() * 1000))
        self._requests = PendingRequests(settings.request_timeout)
        self.changes = ChangeFeed()
        """Every change of every bot, once; see `subscribe`."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._liveness: LivenessMonitor | None = None
        self._full_pass_mono = float("-inf")

    # -- startup and shutdown ---------------------------------------------------

    async def start(self) -> None:
        """Record the store's wishes, start the loop, then warm the zygote.

        The API may already be answering: a command during the warm-up only
        records its wish; the loop forks nothing until the zygote is ready.
        """
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self._liveness = LivenessMonitor(self.paths.liveness_board)
        self._spawn_task(self._channel.serve(self._on_message), "control channel")
        wanted = self.store.desired_bots()
        for bot_id in wanted:
            self._contained(bot_id, lambda bot_id=bot_id: self._bot(bot_id))
        self._spawn_task(self._reconcile_forever(), "reconciler")
        await self._processes.warm_up()
        self._decide_beats()
        self._ready = True
        self._poke()
        logger.info("supervisor started; %d bots to bring back", len(wanted))

    async def shutdown(self) -> None:
        """Tell every worker to stop, wait the grace period, SIGKILL the rest.

        Only the in-memory wish is cleared, so nothing restarts while stopping;
        the store keeps what the user asked for, for the next boot.
        """
        self._stopping = True
        grace = self.settings.stop_grace
        for bot in self._bots.values():
            bot.wanted = False
        self._reconcile()
        await self._wait_until(self._all_stopped, grace + 2 * self.settings.tick)
        for bot in self._bots.values():
            if bot.worker is not None:
                logger.warning("bot %s: did not stop within %.0f s; SIGKILL", bot.bot_id, grace)
                self._processes.kill(bot.worker)
        await self._wait_until(self._all_stopped, 2.0)
        for task in self._tasks:
            task.cancel()
        self._channel.close()
        self.changes.close()

    def kill_all(self) -> None:
        """The second signal: no grace, SIGKILL every worker now."""
        for bot in self._bots.values():
            if bot.worker is not None:
                self._processes.kill(bot.worker)

    def _all_stopped(self) -> bool:
        return all(b.worker is None for b in self._bots.values())

    # -- Fleet: what the API calls ------------------------------------------------

    def ready(self) -> bool:
        return self._ready and self.placement.healthy()

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """Every change record published from now on (see shared.changes).

        One `Change` per change of a bot's API state or supervisor phase, and one
        per change of its worker's counters (kind `counters`), and a `removed`
        record when the bot is deleted. Iterate with `async for`; close the
        subscription (or leave its `with` block) when done. A listener more than
        `maxsize` records behind loses the oldest (`subscription.dropped` counts
        them); the iteration ends at shutdown.
        """
        return self.changes.subscribe(maxsize)

    async def bot_added(self, bot_id: str) -> None:
        """A new bot: webhook-mode ones are wanted at once; the loop starts them."""
        self._bot(bot_id)
        self._poke()

    async def connect(self, bot_id: str) -> None:
        """Persist the wish and return; the loop (re)starts the worker at once."""
        bot = self._command_target(bot_id)
        async with bot.commands:
            self._check_alive(bot)
            self.store.set_desired_connected(bot_id, True)
            bot.wanted = True
            bot.retry_now = bot.phase in (Phase.STOPPED, Phase.BACKOFF, Phase.FATAL)
            if bot.retry_now:
                bot.forget_trouble()
            self._contained(bot_id, lambda: self._step(bot))

    async def disconnect(self, bot_id: str) -> None:
        """Persist the wish; return once the worker is gone (bounded by the stop bound)."""
        bot = self._command_target(bot_id)
        async with bot.commands:
            self._check_alive(bot)
            self.store.set_desired_connected(bot_id, False)
            bot.wanted = self.store.is_desired(bot_id)
            bot.retry_now = False
            self._contained(bot_id, lambda: self._step(bot))
            await self._wait_for(bot, lambda: bot.keep or bot.phase not in ALIVE)
            if bot.phase == Phase.STOPPED:
                bot.forget_trouble()
                bot.retire_report()
                self._settle(bot, "disconnected")
        await self.placement.wait_released(bot_id, self.stop_bound())

    async def bot_changed(self, bot_id: str) -> None:
        """The config changed: a worker on the old config is restarted by the loop, and a
        bot waiting in BACKOFF or `error` starts at once on the new config (it may be the
        fix, or a switch to webhook mode), from a clean slate as after a connect."""
        bot = self._command_target(bot_id)
        async with bot.commands:
            self._check_alive(bot)
            bot.webhook_mode = not self.store.bot_config(bot_id).use_websocket
            bot.wanted = self.store.is_desired(bot_id)
            bot.config_version += 1
            if bot.phase in (Phase.BACKOFF, Phase.FATAL):
                bot.forget_trouble()
            self._contained(bot_id, lambda: self._step(bot))

    async def bot_removed(self, bot_id: str) -> None:
        """Stop the worker, delete the bot from the store, forget it.

        A second delete, or any command, on a bot being deleted raises NotFound.
        Raises CommandTimeout if the worker outlives the stop bound (the bot
        stays marked for deletion and goes as soon as its worker does).
        """
        bot = self._command_target(bot_id)
        async with bot.commands:
            self._check_alive(bot)
            bot.deleting = True
            self._contained(bot_id, lambda: self._step(bot))
            await self._wait_for(bot, lambda: self._bots.get(bot_id) is not bot)

    async def holder_address(self, bot_id: str) -> str | None:
        if self.placement.holder(bot_id) == self.node_id:
            return None
        return await self.placement.locate(bot_id)

    def status(self, bot_id: str) -> BotStatus:
        """The bot's status here; in cluster mode, the holder's published state and node."""
        bot = self._known(bot_id)
        status = bot.to_status()
        holder = self.placement.holder(bot_id)
        if holder is not None and holder != self.node_id and bot.phase == Phase.STOPPED:
            published = self.placement.published_state(bot_id)
            status.state = ConnState(published) if published else ConnState.CONNECTING
            status.node = holder
        elif bot.phase != Phase.STOPPED:
            status.node = self.node_id
        return status

    def metrics(self, bot_id: str) -> BotMetrics:
        return self._known(bot_id).to_metrics()

    async def deliver_webhook(
        self, bot_id: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        request = Deliver(request_id=uuid.uuid4().hex, headers=headers, body=body)
        result = await self._request(bot_id, request, DeliverResult)
        if isinstance(result, DeliverResult):
            return result.status, result.body, result.content_type
        return 503, b'{"msg":"no worker answered"}', "application/json"

    async def send_message(
        self, bot_id: str, receive_id: str, receive_id_type: str,
        replies: list[results.Reply] | str, uuid_: str | None,
    ) -> SendResult:
        """Send messages through the bot's worker: a list of replies, or one text."""
        if isinstance(replies, str):
            replies = [results.Text(text=replies)]
        request = Send(
            request_id=uuid.uuid4().hex,
            receive_id=receive_id,
            receive_id_type=receive_id_type,
            uuid=uuid_,
            replies=replies,
        )
        return await self._request(bot_id, request, SendResult)

    async def retry_dead_letter(self, bot_id: str, event_id: str) -> RetryResult:
        request = RetryDeadLetter(request_id=uuid.uuid4().hex, event_id=event_id)
        return await self._request(bot_id, request, RetryResult)

    async def _request(self, bot_id: str, request: Request, kind: type[R]) -> R:
        """Ask the bot's worker; a worker still starting is waited for, a missing one is not.

        Returns a reply of `kind`: the worker's, or a failed one (NO_WORKER) when
        no worker answered in time or it answered with the wrong kind.
        """
        bot = self._known(bot_id)
        if bot.phase == Phase.STARTING:
            await self._wait_until(lambda: bot.phase != Phase.STARTING,
                                   self.settings.request_timeout)
        if bot.phase != Phase.RUNNING:
            error = f"bot {bot_id} has no running worker (state {bot.api_state()})"
            reply = failed_reply(request, bot_id, NO_WORKER, error, 503)
        else:
            reply = await self._requests.ask(
                bot_id, lambda message: self._channel.send(bot.identity, message), request
            )
        if isinstance(reply, kind):
            return reply
        logger.error("bot %s: %s answered with %s", bot_id, type(request).__name__,
                     type(reply).__name__)
        failed = failed_reply(request, bot_id, NO_WORKER, "the worker answered out of turn", 502)
        return failed  # type: ignore[return-value]

    # -- the model: the wish, in one place ----------------------------------------

    def _bot(self, bot_id: str) -> ManagedBot:
        """The bot's model, created from the store on first sight; raises NotFound."""
        bot = self._bots.get(bot_id)
        if bot is None:
            record = self.store.get_bot(bot_id)
            bot = ManagedBot(
                bot_id=bot_id,
                owner=record.owner,
                wanted=self.store.is_desired(bot_id),
                webhook_mode=not record.config.use_websocket,
                policy=self.settings.backoff,
            )
            bot.lifecycle.listener = lambda why: self._settle(bot, why)
            self._bots[bot_id] = bot
            self._settle(bot, "known")
        return bot

    def _known(self, bot_id: str) -> ManagedBot:
        """For status and requests: the model, also of a bot being deleted."""
        return self._bot(bot_id)

    def _command_target(self, bot_id: str) -> ManagedBot:
        bot = self._bot(bot_id)
        self._check_alive(bot)
        return bot

    def _check_alive(self, bot: ManagedBot) -> None:
        """Commands on a bot being deleted (or gone while waiting) answer 404."""
        if bot.deleting or self._bots.get(bot.bot_id) is not bot:
            raise NotFound(bot.bot_id)

    def _poke(self) -> None:
        self._wake.set()

    # -- what cluster mode asks (supervisor.cluster.node.Workers) -------------------
    # The lease is part of the wish: a worker runs only while `placement.may_run`.

    def lease_gained(self, bot_id: str) -> None:
        self._contained(bot_id, lambda: self._bot(bot_id))
        self._poke()

    def lease_lost(self, bot_ids: list[str]) -> None:
        """Stop these workers within LEASE_STOP_GRACE: the lease is lapsing or gone."""
        now = self._clock.mono()
        for bot_id in bot_ids:
            bot = self._bots.get(bot_id)
            if bot is not None:
                self._contained(bot_id, lambda bot=bot: self._stop_soon(bot, now))
        self._poke()

    def _stop_soon(self, bot: ManagedBot, now: float) -> None:
        if bot.phase in (Phase.STARTING, Phase.RUNNING):
            self._apply(bot, Action(Verb.STOP, "lease lost"), now, grace=LEASE_STOP_GRACE)
        elif bot.phase == Phase.STOPPING:
            bot.stop_deadline_mono = min(bot.stop_deadline_mono, now + LEASE_STOP_GRACE)
        self._step(bot, now)

    async def hand_over(self, bot_id: str, since_epoch: float) -> AnswerKeys:
        """The node released the bot (placement says no): return once its worker is gone,
        with the events its spool marked done since `since_epoch`: the last
        ones may not have been reported yet."""
        bot = self._bots.get(bot_id)
        if bot is not None:
            self._contained(bot_id, lambda: self._step(bot))
            await self._wait_until(lambda: bot.phase not in ALIVE, self.stop_bound())
        return await asyncio.to_thread(read_answered, self.paths.spool(bot_id), since_epoch)

    async def wish_changed(self, bot_id: str, config_changed: bool) -> None:
        """A change made through any node's API, heard by the holder."""
        bot = self._bots.get(bot_id)
        try:
            if config_changed:
                await self.bot_changed(bot_id)
                return
            bot = self._bot(bot_id)
            bot.wanted = self.store.is_desired(bot_id)
            self._contained(bot_id, lambda: self._step(bot))
        except NotFound:
            if bot is not None and self._bots.get(bot_id) is bot:
                bot.deleting = True
                self._contained(bot_id, lambda: self._step(bot))
                await self._wait_until(lambda: self._bots.get(bot_id) is not bot,
                                       self.stop_bound())

    def connect_requested(self, bot_id: str) -> None:
        """Someone pressed connect on another node: a bot held here in backoff or in
        `error` is retried now, as a connect on this node would (the wish is stored)."""
        bot = self._bots.get(bot_id)
        if bot is not None and bot.phase in (Phase.BACKOFF, Phase.FATAL):
            bot.retry_now = True
            bot.forget_trouble()
            self._contained(bot_id, lambda: self._step(bot))

    def kill_now(self, bot_ids: list[str]) -> None:
        """Thread-safe (the node's last resort when this loop is stuck): SIGKILL the
        workers through their pidfds; the loop reaps them when it runs again."""
        for bot_id in bot_ids:
            bot = self._bots.get(bot_id)
            worker = bot.worker if bot is not None else None
            if worker is not None:
                self._processes.kill(worker)

    def api_state(self, bot_id: str) -> str:
        bot = self._bots.get(bot_id)
        return bot.api_state() if bot is not None else ConnState.DISCONNECTED

    def stop_bound(self) -> float:
        """Longest a stop can take: the grace, then SIGKILL and its reaping (a few ticks)."""
        return self.settings.stop_grace + 2.0 + 10 * self.settings.tick

    def _decide_beats(self) -> None:
        """Once, before the first fork: can a late beat be checked against /proc? The
        workers' idle beat period follows (supervisor/settings.py, `beat_intervals`)."""
        why_not = self._loops.unavailable(self._processes.zygote_pid())
        self._loops_visible = why_not is None
        self._beats = self.settings.beat_intervals(self._loops_visible)
        if why_not is None:
            logger.info("idle workers beat every %g s: a late beat is checked in /proc "
                        "(a loop asleep in epoll_wait is not hung); %g s while working",
                        self._beats[1], self._beats[0])
        else:
            logger.info("workers beat every %g s: /proc cannot show their loops (%s)",
                        self._beats[0], why_not)

    # -- the loop -------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        woken = True
        while True:
            self._reconcile(full=woken)
            woken = False
            try:
                async with asyncio.timeout(self.settings.tick):
                    await self._wake.wait()
                woken = True
            except TimeoutError:
                pass
            self._wake.clear()

    def _reconcile(self, full: bool = True) -> None:
        """One pass: the supervisor's beat, every worker's beat read, every bot's next
        action; no message and no syscall per bot, so thousands of bots cost little.

        A timer tick (`full` False) that comes less than FULL_PASS_S after the last full
        pass skips the policy for bots RUNNING with a beat fresher than the heartbeat
        timeout: time alone cannot give them an action before that timeout, and every
        other change (a command, an exit, a config change, a lost lease, shutdown) steps
        the bot itself or wakes the loop for a full pass. At rest that was most of the
        supervisor's CPU (py-spy: View + decide for every bot, four times a second). The
        full pass every second still catches what only time changes elsewhere (a
        cluster node's lease deadline in `placement.may_run`). On one host `may_run`
        never changes (`placement.lapses` is False), so timer ticks never make a full
        pass: at 1,000 bots it held the loop ~2.5 ms once a second, its longest chunk
        at rest.
        """
        now = self._clock.mono()
        if full or (self.placement.lapses and now - self._full_pass_mono >= FULL_PASS_S):
            full, self._full_pass_mono = True, now
        fresh_since = now - self._timeouts.heartbeat
        if self._liveness is not None:
            self._liveness.beat()
            for bot_id in self._liveness.scan(now):
                beaten = self._bots.get(bot_id)
                if (beaten is not None and beaten.worker is not None and beaten.phase in ALIVE
                        and now > beaten.alive_mono):
                    beaten.beat_seen(now)
        for bot in list(self._bots.values()):
            if (self._loops_visible and bot.loop_tid and bot.pid is not None
                    and wants_look(bot.phase, bot.worker is not None, bot.alive_mono,
                                   self._timeouts, now)):
                self._contained(bot.bot_id, lambda bot=bot, pid=bot.pid: self._look(bot, pid, now))
            if (not full and bot.alive_mono >= fresh_since and bot.worker is not None
                    and bot.phase == Phase.RUNNING):
                continue
            self._contained(bot.bot_id, lambda bot=bot: self._step(bot, now))

    def _look(self, bot: ManagedBot, pid: int, now: float) -> None:
        """The worker's beat is nearly late (policy.wants_look): a loop the kernel shows
        asleep in epoll_wait is waiting for I/O, not hung, so that counts as a beat
        (policy.loop_waits_for_io). An idle worker beats every 30 s and is looked at here
        every few seconds instead: two small /proc reads in this process rather than a
        wake of the worker."""
        if self._loops.waits_for_io(pid, bot.loop_tid):
            bot.beat_seen(now)

    def _step(self, bot: ManagedBot, now: float | None = None) -> None:
        """Apply the policy to one bot: one action, or a HALT and what follows it."""
        now = self._clock.mono() if now is None else now
        for _ in range(3):
            action = decide(self._view(bot), self._timeouts, now)
            if action is None:
                return
            self._apply(bot, action, now)
            if action.verb != Verb.HALT:
                return

    def _view(self, bot: ManagedBot) -> View:
        return View(
            phase=bot.phase,
            keep=bot.keep and not self._stopping and self.placement.may_run(bot.bot_id),
            deleting=bot.deleting,
            retry_now=bot.retry_now,
            has_process=bot.worker is not None,
            stale_config=bot.worker_config_version != bot.config_version,
            ready=self._ready and not self._stopping,
            shutting_down=self._stopping,
            started_mono=bot.started_mono,
            alive_mono=bot.alive_mono,
            stop_deadline_mono=bot.stop_deadline_mono,
            retry_mono=bot.retry_mono,
        )

    def _apply(
        self, bot: ManagedBot, action: Action, now: float, grace: float | None = None
    ) -> None:
        match action.verb:
            case Verb.START:
                self._start(bot, action.why, now)
            case Verb.STOP:
                grace = self.settings.stop_grace if grace is None else grace
                bot.stop_deadline_mono = now + grace
                if not bot.keep:  # as in `_to_stopped`; the live worker's figures stay
                    bot.forget_trouble()
                bot.lifecycle.change(Phase.STOPPING, action.why)
                if bot.worker is not None:
                    self._channel.send(bot.identity, Stop(grace=grace))
            case Verb.KILL:
                self._murder(bot, action.why)
            case Verb.HALT:
                self._to_stopped(bot, action.why)
            case Verb.FORGET:
                self._forget(bot)

    def _start(self, bot: ManagedBot, reason: str, now: float) -> None:
        """Fork a new incarnation of the bot's worker (the fork itself runs off the loop)."""
        record = self.store.get_bot(bot.bot_id)
        config = record.config
        trusted = self.store.get_user(record.owner).is_admin
        bot.webhook_mode = not config.use_websocket
        bot.worker_config_version = bot.config_version
        bot.retry_now = False
        bot.incarnation = next(self._incarnations)
        bot.started_mono = now
        bot.retire_report()
        bot.pid = None
        bot.loop_tid = 0
        bot.connected_since_mono = None
        bot.connected_this_run = False
        if reason == "retry":
            reason = f"retry {bot.backoff.attempt}"
        bot.lifecycle.change(Phase.STARTING, reason)
        seat = self._liveness.seat(bot.bot_id, now) if self._liveness else None
        spec = WorkerSpec(
            bot=config,
            incarnation=bot.incarnation,
            data_dir=str(self.paths.root),
            control_endpoint=self.paths.control_endpoint,
            heartbeat_interval=self._beats[0],
            idle_beat_interval=self._beats[1],
            log_level=self.settings.worker_log_level,
            endpoint_timeout=self.settings.endpoint_timeout,
            event_max_attempts=self.settings.event_max_attempts,
            event_retry_base=self.settings.event_retry_base,
            proxy=self.settings.proxy,
            security=self.settings.security.for_owner(trusted),
            share_answers=self.placement.shares_answers,
        )
        if seat is not None:
            spec.liveness_path, spec.liveness_slot = seat.path, seat.slot
            spec.liveness_token, spec.supervisor_token = seat.token, seat.supervisor_token
        self._spawn_task(self._fork(bot, spec), f"fork of {bot.bot_id}")

    async def _fork(self, bot: ManagedBot, spec: WorkerSpec) -> None:
        incarnation = spec.incarnation
        try:
            await self._learn_answered(bot.bot_id)
            worker = await self._processes.spawn(
                spec, lambda code: self._contained(
                    bot.bot_id, lambda: self._exited(bot, incarnation, code, None))
            )
        except Exception as error:
            logger.exception("bot %s: fork failed", bot.bot_id)
            why = f"fork failed: {error}"
            self._contained(bot.bot_id, lambda: self._exited(bot, incarnation, None, why))
            return
        if bot.incarnation != incarnation or bot.phase not in ALIVE:
            self._processes.kill(worker)
            return
        bot.worker = worker
        bot.pid = worker.pid
        logger.info("bot %s: worker pid %s", bot.bot_id, worker.pid)
        if bot.phase == Phase.STOPPING:
            self._processes.kill(worker)

    async def _learn_answered(self, bot_id: str) -> None:
        """Cluster mode, first start after taking the bot: what other nodes answered goes
        into this node's spool first, so a redelivery is a duplicate here too. Raises
        (the start fails and is retried) when the keys cannot be read."""
        keys = await self.placement.answered_elsewhere(bot_id)
        if keys:
            settled = await asyncio.to_thread(mark_answered, self.paths.spool(bot_id), keys)
            logger.info("bot %s: %d event(s) answered on other nodes known here (%d pending"
                        " settled)", bot_id, len(keys), settled)

    def _exited(
        self, bot: ManagedBot, incarnation: int, code: int | None, why: str | None
    ) -> None:
        """The worker of `incarnation` ended (or never started): move the bot on."""
        if bot.incarnation != incarnation:
            return
        bot.worker = None
        if bot.pid is not None:
            self._loops.forget(bot.pid)
        if self._liveness is not None:
            self._liveness.unseat(bot.bot_id)
        logger.info("bot %s: worker exited with %s", bot.bot_id, code)
        if bot.phase not in ALIVE:
            self._settle(bot, "worker exited")
            self._poke()
            return
        now = self._clock.mono()
        outcome = after_exit(bot.phase, code, why if why is not None else bot.error)
        if outcome.failure:
            bot.restarts += 1
            if why is not None or bot.error is None:
                bot.error, bot.error_code = outcome.why, None
            delay = bot.backoff.failed(now, after_connecting=bot.connected_this_run)
            bot.retry_mono = now + delay
            bot.retry_epoch = self._clock.epoch() + delay
            bot.lifecycle.change(Phase.BACKOFF, f"retry in {delay:.1f} s ({bot.error})")
        elif outcome.phase == Phase.FATAL:
            if bot.error is None:
                bot.error = outcome.why
            if bot.phase != Phase.FATAL:
                bot.lifecycle.change(Phase.FATAL, bot.error)
        elif outcome.phase == Phase.STOPPED:
            self._to_stopped(bot, outcome.why)
        else:
            bot.lifecycle.change(outcome.phase, outcome.why)
        self._step(bot, now)
        self._poke()

    def _to_stopped(self, bot: ManagedBot, why: str) -> None:
        """Enter STOPPED; when the wish is no worker (a disconnect, a delete, shutdown),
        the last error, flapping and the worker's figures go first, so the change record
        announcing `disconnected` carries the status as it is after the change (README:
        a disconnect clears them). A restart (config change, lost lease) keeps them."""
        if not bot.keep:
            bot.forget_trouble()
            bot.retire_report()
        bot.lifecycle.change(Phase.STOPPED, why)

    def _murder(self, bot: ManagedBot, why: str) -> None:
        """SIGKILL a worker that missed its deadline; its exit handler does what follows."""
        logger.warning("bot %s: %s; SIGKILL pid %s", bot.bot_id, why, bot.pid)
        if bot.phase != Phase.STOPPING:
            bot.error, bot.error_code = why, None
        if bot.worker is not None:
            self._processes.kill(bot.worker)

    def _forget(self, bot: ManagedBot) -> None:
        """The deleted bot's worker is gone: delete its row, drop the model, announce it."""
        with contextlib.suppress(NotFound):
            self.store.delete_bot(bot.bot_id)
        self._bots.pop(bot.bot_id, None)
        self.changes.publish(Change(
            bot_id=bot.bot_id, owner=bot.owner, kind=ChangeKind.REMOVED,
            from_state=bot.api_state(), to_state=None, phase=bot.phase, why="bot deleted",
            at_epoch=self._clock.epoch(),
        ))
        logger.info("bot %s: forgotten", bot.bot_id)

    # -- containment ---------------------------------------------------------------

    def _contained(self, bot_id: str, step: Callable[[], object]) -> None:
        """Run one bot's step; an exception parks that bot in `error` (code `internal`)."""
        try:
            step()
        except Exception as error:
            logger.exception("bot %s: supervision step failed; the bot is parked", bot_id)
            bot = self._bots.get(bot_id)
            if bot is not None:
                self._park(bot, error)

    def _park(self, bot: ManagedBot, error: Exception) -> None:
        try:
            bot.retry_now = False
            bot.error, bot.error_code = f"internal error: {error!r}", INTERNAL
            if bot.worker is not None:
                self._processes.kill(bot.worker)
            if bot.phase != Phase.FATAL:
                bot.lifecycle.change(Phase.FATAL, "internal error")
        except Exception:
            logger.exception("bot %s: could not park the bot", bot.bot_id)

    def _spawn_task(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- change records and waiting ----------------------------------------------------

    def _settle(self, bot: ManagedBot, why: str) -> None:
        """Publish one change record if the bot's phase, API state or counters moved.

        Called after every lifecycle change and every worker message; the one
        place that announces, so waiters, logs and streams all hear the same.
        """
        state, phase = bot.api_state(), bot.phase
        previous = bot.announced
        counts = bot.counts()
        if previous == (phase, state) and counts == bot.announced_counts:
            return
        kind = ChangeKind.STATE if previous != (phase, state) else ChangeKind.COUNTERS
        bot.announced, bot.announced_counts = (phase, state), counts
        self.changes.publish(Change(
            bot_id=bot.bot_id, owner=bot.owner, kind=kind,
            from_state=previous[1] if previous else None, to_state=state, phase=phase,
            why=why, at_epoch=self._clock.epoch(), status=bot.to_status(),
        ))

    async def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds, re-checked after every change record; False on timeout."""
        deadline = self._clock.mono() + timeout
        with self.changes.subscribe(maxsize=1) as wakeups:
            while not done():
                remaining = deadline - self._clock.mono()
                if remaining <= 0 or wakeups.closed:
                    return done()
                await wakeups.get(min(remaining, self.settings.tick))
        return True

    async def _wait_for(self, bot: ManagedBot, done: Callable[[], bool]) -> None:
        """A command's wait for its wish to come true; raises CommandTimeout past the bound."""
        bound = self.stop_bound()
        if not await self._wait_until(done, bound):
            raise CommandTimeout(f"bot {bot.bot_id} is still {bot.api_state()} after {bound:g} s")

    # -- messages from workers -----------------------------------------------------------

    def _on_message(self, identity: bytes, message: FromWorker) -> None:
        bot_id = getattr(message, "bot_id", "(unknown)")
        self._contained(bot_id, lambda: self._handle(identity, message))

    def _handle(self, identity: bytes, message: FromWorker) -> None:
        if isinstance(message, Answered):  # facts, whichever incarnation: even a last word
            if message.bot_id in self._bots:
                self.placement.answered(message.bot_id, message.keys)
            return
        bot = self._bots.get(message.bot_id)
        if bot is None or message.incarnation != bot.incarnation or bot.phase not in ALIVE:
            logger.debug("dropped %s from stale worker %r", type(message).__name__, identity)
            return
        now = self._clock.mono()
        bot.seen_alive(now)
        match message:
            case Hello():
                bot.pid = message.pid
                bot.loop_tid = message.loop_tid
                if bot.phase == Phase.STARTING:
                    bot.lifecycle.change(Phase.RUNNING, "hello")
            case Heartbeat():
                bot.keep_report(message, now)
            case StateChanged():
                self._state_changed(bot, message, now)
            case DeliverResult() | SendResult() | RetryResult():
                self._requests.answer(message)
                return
        self._settle(bot, f"worker reports {bot.report.state}" if bot.report else "hello")

    def _state_changed(self, bot: ManagedBot, message: StateChanged, now: float) -> None:
        error = redactor.redact(message.error) if message.error is not None else None
        if error is not None:
            bot.error, bot.error_code = error, message.code
        elif message.state == ConnState.WEBHOOK:
            bot.error = bot.error_code = None
        report = bot.report or Heartbeat(
            bot_id=bot.bot_id, incarnation=bot.incarnation, state=message.state
        )
        report.state = message.state
        bot.keep_report(report, now)
        detail = f" ({error})" if error else ""
        logger.info("bot %s: worker reports %s%s", bot.bot_id, message.state, detail)


__all__ = ["CommandTimeout", "Supervisor", "Worker"]
