"""The Supervisor: owns every worker, decides every start, stop and restart.

Like gunicorn's arbiter, one loop decides and the verbs say what they do:
`_reap` an exited worker, `_murder` a hung one, `_manage` deadlines. Signals
and API calls only change the wish (`wanted`) or poke the loop; all process
changes go through a bot's Lifecycle. It implements api.fleet.Fleet.
"""

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from multiprocess.process import BaseProcess

from shared import exitcodes, results
from shared.changes import DEFAULT_QUEUE, Change, ChangeFeed, ChangeKind, Subscription
from shared.logs import redactor
from shared.messages import (
    NO_WORKER,
    Deliver,
    DeliverResult,
    FromWorker,
    Heartbeat,
    Hello,
    Ping,
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
from supervisor.bot import ManagedBot
from supervisor.lifecycle import ALIVE, Phase
from supervisor.placement import Placement, SingleNode, default_node_id
from supervisor.requests import PendingRequests
from supervisor.router import Router
from supervisor.settings import SupervisorSettings
from supervisor.zygote import Zygote, kill

logger = logging.getLogger(__name__)

LEASE_STOP_GRACE = 1.0
"""Seconds a worker gets to stop when its lease is lost; inside the lease margin."""

class Supervisor:
    def __init__(
        self, paths: DataPaths, store: Store, settings: SupervisorSettings,
        placement: Placement | None = None,
    ) -> None:
        self.paths = paths
        self.store = store
        self.settings = settings
        self.placement: Placement = placement or SingleNode(default_node_id())
        """Where bots may run: always here on one host, by lease in cluster mode."""
        self.node_id = self.placement.node_id
        self._zygote = Zygote()
        self._router = Router(paths.control_socket)
        self._bots: dict[str, ManagedBot] = {}
        self._incarnations = itertools.count(time.time_ns() // 1_000_000)
        self._requests = PendingRequests(settings.request_timeout)
        self.changes = ChangeFeed()
        """Every change of every bot, once; see `subscribe`."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._zygote_ready = False
        self._last_ping_at = 0.0

    # -- startup and shutdown ---------------------------------------------------

    async def start(self) -> None:
        """Warm the zygote, then bring back every bot the registry wants running."""
        self._spawn_task(self._router.serve(self._on_message))
        await asyncio.to_thread(self._zygote.warm_up)
        self._zygote_ready = True
        wanted = {b for b in self.store.desired_bots() if self.placement.may_run(b)}
        for bot_id in wanted:
            bot = self._bot(bot_id)
            self._start(bot, "desired at boot")
        self._spawn_task(self._manage_forever())
        logger.info("supervisor started; %d bots brought back", len(wanted))

    async def shutdown(self) -> None:
        """Tell every worker to stop, wait the grace period, SIGKILL the rest.

        Only the in-memory wish is cleared, so nothing restarts while stopping;
        the registry keeps what the user asked for, for the next boot.
        """
        grace = self.settings.stop_grace
        for bot in self._bots.values():
            self._stop(bot, "shutdown", wanted_after=False)
        deadline = time.monotonic() + grace
        await self._wait_all_stopped(deadline)
        stragglers = [b for b in self._bots.values() if b.process is not None]
        for bot in stragglers:
            logger.warning("bot %s: did not stop within %.0f s; SIGKILL", bot.bot_id, grace)
            kill(bot.process)
        await self._wait_all_stopped(time.monotonic() + 2.0)
        for task in self._tasks:
            task.cancel()
        self._router.close()
        self.changes.close()

    def kill_all(self) -> None:
        """The second signal: no grace, SIGKILL every worker now."""
        for bot in self._bots.values():
            if bot.process is not None:
                kill(bot.process)

    async def _wait_all_stopped(self, deadline: float) -> None:
        await self._wait_until(
            lambda: all(b.process is None for b in self._bots.values()),
            deadline - time.monotonic(),
        )

    # -- Fleet: what the API calls ------------------------------------------------

    def ready(self) -> bool:
        return self._zygote_ready and self.placement.healthy()

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
        bot = self._bot(bot_id)
        if bot.wanted:
            self._start(bot, "created")

    async def connect(self, bot_id: str) -> None:
        self.store.set_desired_connected(bot_id, True)
        bot = self._bot(bot_id)
        bot.wanted = self._wanted(bot_id)
        if not bot.wanted:
            return  # cluster mode: another node holds it, or will take it
        bot.backoff.reset()
        bot.error = bot.error_code = None
        if bot.phase in (Phase.STOPPED, Phase.FATAL, Phase.BACKOFF):
            self._start(bot, "connect requested")

    async def disconnect(self, bot_id: str) -> None:
        self.store.set_desired_connected(bot_id, False)
        bot = self._bot(bot_id)
        bot.wanted = self._wanted(bot_id)
        if not bot.wanted:
            await self._stop_and_wait(bot, "disconnect requested")
        await self.placement.wait_released(bot_id, self.stop_bound())

    async def bot_changed(self, bot_id: str) -> None:
        bot = self._bot(bot_id)
        bot.webhook_mode = not self.store.bot_config(bot_id).use_websocket
        bot.wanted = self._wanted(bot_id)
        if bot.phase in (Phase.STARTING, Phase.RUNNING):
            self._stop(bot, "config changed", wanted_after=bot.wanted)
        elif bot.wanted and bot.phase != Phase.STOPPING:
            self._start(bot, "config changed")
        elif not bot.wanted:
            await self._stop_and_wait(bot, "config changed")

    async def bot_removed(self, bot_id: str) -> None:
        bot = self._bots.get(bot_id)
        if bot is None:
            return
        bot.wanted = False
        await self._stop_and_wait(bot, "bot deleted")
        del self._bots[bot_id]
        self.changes.publish(Change(
            bot_id=bot_id, owner=bot.owner, kind=ChangeKind.REMOVED,
            from_state=bot.api_state(), to_state=None, phase=bot.phase, why="bot deleted",
            at_epoch=time.time(),
        ))

    def holder_address(self, bot_id: str) -> str | None:
        holder = self.placement.holder(bot_id)
        if holder is None or holder == self.node_id:
            return None
        return self.placement.address_of(holder)

    def status(self, bot_id: str) -> BotStatus:
        bot = self._bot(bot_id)
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
        return self._bot(bot_id).to_metrics()

    async def deliver_webhook(
        self, bot_id: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        request = Deliver(request_id=uuid.uuid4().hex, headers=headers, body=body)
        result = await self._request(bot_id, request)
        assert isinstance(result, DeliverResult)
        return result.status, result.body, result.content_type

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
        result = await self._request(bot_id, request)
        assert isinstance(result, SendResult)
        return result

    async def retry_dead_letter(self, bot_id: str, event_id: str) -> RetryResult:
        request = RetryDeadLetter(request_id=uuid.uuid4().hex, event_id=event_id)
        result = await self._request(bot_id, request)
        assert isinstance(result, RetryResult)
        return result

    async def _request(self, bot_id: str, request: Request) -> Reply:
        """Ask the bot's worker; a worker still starting is waited for, a missing one is not."""
        bot = self._bot(bot_id)
        if bot.phase == Phase.STARTING:
            await self._wait_until(lambda: bot.phase != Phase.STARTING,
                                   self.settings.request_timeout)
        if bot.phase != Phase.RUNNING:
            error = f"bot {bot_id} has no running worker (state {bot.api_state()})"
            return failed_reply(request, bot_id, NO_WORKER, error, 503)
        return await self._requests.ask(
            bot_id, lambda message: self._router.send(bot.identity, message), request
        )

    # -- the loop's verbs ---------------------------------------------------------

    def _bot(self, bot_id: str) -> ManagedBot:
        bot = self._bots.get(bot_id)
        if bot is None:
            record = self.store.get_bot(bot_id)
            bot = ManagedBot(
                bot_id=bot_id,
                owner=record.owner,
                wanted=self._wanted(bot_id),
                webhook_mode=not record.config.use_websocket,
                policy=self.settings.backoff,
            )
            bot.lifecycle.listener = lambda why: self._settle(bot, why)
            self._bots[bot_id] = bot
            self._settle(bot, "known")
        return bot

    def _settle(self, bot: ManagedBot, why: str) -> None:
        """Publish one change record if the bot's phase, API state or counters moved.

        Called after every lifecycle change and every worker message; the one
        place that announces, so waiters, logs and streams all hear the same.
        """
        state, phase = bot.api_state(), bot.phase
        previous = bot.announced
        counters = bot.counters()
        if previous == (phase, state) and counters == bot.announced_counters:
            return
        kind = ChangeKind.STATE if previous != (phase, state) else ChangeKind.COUNTERS
        bot.announced, bot.announced_counters = (phase, state), counters
        self.changes.publish(Change(
            bot_id=bot.bot_id, owner=bot.owner, kind=kind,
            from_state=previous[1] if previous else None, to_state=state, phase=phase,
            why=why, at_epoch=time.time(), status=bot.to_status(),
        ))

    def _wanted(self, bot_id: str) -> bool:
        """Wanted here: the user's wish AND this node's right to run it (its lease)."""
        return self.placement.may_run(bot_id) and self.store.is_desired(bot_id)

    # -- what cluster mode asks (supervisor.cluster.node.Workers) -------------------

    def lease_gained(self, bot_id: str) -> None:
        self._spawn_task(self._reconcile(bot_id, "lease taken"))

    def lease_lost(self, bot_ids: list[str]) -> None:
        """Stop these workers within LEASE_STOP_GRACE: the lease is lapsing or gone."""
        for bot_id in bot_ids:
            bot = self._bots.get(bot_id)
            if bot is not None:
                self._stop(bot, "lease lost", wanted_after=False, grace=LEASE_STOP_GRACE)

    async def hand_over(self, bot_id: str) -> None:
        bot = self._bots.get(bot_id)
        if bot is not None:
            await self._stop_and_wait(bot, "handover to another node")

    async def wish_changed(self, bot_id: str, config_changed: bool) -> None:
        """A change made through any node's API, heard by the holder."""
        try:
            if config_changed:
                await self.bot_changed(bot_id)
            else:
                await self._reconcile(bot_id, "wish changed")
        except NotFound:
            await self.bot_removed(bot_id)

    def api_state(self, bot_id: str) -> str:
        bot = self._bots.get(bot_id)
        return bot.api_state() if bot is not None else ConnState.DISCONNECTED

    async def _reconcile(self, bot_id: str, reason: str) -> None:
        """Start or stop the worker so it matches `_wanted` (wish AND lease)."""
        bot = self._bot(bot_id)
        bot.wanted = self._wanted(bot_id)
        if bot.wanted and bot.phase == Phase.STOPPED:
            self._start(bot, reason)
        elif not bot.wanted and bot.phase in ALIVE:
            self._stop(bot, reason, wanted_after=False)

    def _start(self, bot: ManagedBot, reason: str) -> None:
        """Fork a new incarnation of the bot's worker (the fork itself runs in a thread)."""
        record = self.store.get_bot(bot.bot_id)
        config = record.config
        trusted = self.store.get_user(record.owner).is_admin
        bot.webhook_mode = not config.use_websocket
        bot.lifecycle.change(Phase.STARTING, reason)
        bot.incarnation = next(self._incarnations)
        bot.started_at = time.monotonic()
        bot.retire_report()
        bot.pid = None
        bot.connected_since_at = None
        spec = WorkerSpec(
            bot=config,
            incarnation=bot.incarnation,
            data_dir=str(self.paths.root),
            control_endpoint=self.paths.control_endpoint,
            log_level=self.settings.worker_log_level,
            endpoint_timeout=self.settings.endpoint_timeout,
            event_max_attempts=self.settings.event_max_attempts,
            event_retry_base=self.settings.event_retry_base,
            proxy=self.settings.proxy,
            security=self.settings.security.for_owner(trusted),
        )
        self._spawn_task(self._fork(bot, spec))

    async def _fork(self, bot: ManagedBot, spec: WorkerSpec) -> None:
        try:
            process = await asyncio.to_thread(self._zygote.spawn, spec)
        except Exception as error:
            logger.exception("bot %s: fork failed", bot.bot_id)
            await self._ended(bot, exitcodes.TRANSIENT, f"fork failed: {error}")
            return
        bot.process = process
        bot.pid = process.pid
        asyncio.get_running_loop().add_reader(process.sentinel, self._reap, bot, process)
        logger.info("bot %s: worker pid %d", bot.bot_id, process.pid)
        if bot.phase == Phase.STOPPING or bot.incarnation != spec.incarnation:
            kill(process)

    def _reap(self, bot: ManagedBot, process: BaseProcess) -> None:
        """The worker's sentinel fired: collect its exit code and decide what follows."""
        asyncio.get_running_loop().remove_reader(process.sentinel)
        try:
            code = process.exitcode
        except (EOFError, OSError):
            code = None
        if bot.process is not process:
            return
        bot.process = None
        self._spawn_task(self._ended(bot, code, None))

    async def _ended(self, bot: ManagedBot, code: int | None, why: str | None) -> None:
        now = time.monotonic()
        logger.info("bot %s: worker exited with %s", bot.bot_id, code)
        if bot.phase == Phase.STOPPING:
            if bot.wanted:
                self._start(bot, "restart after stop")
            else:
                bot.lifecycle.change(Phase.STOPPED, "worker stopped")
        elif code == exitcodes.PERMANENT:
            if bot.error is None:
                bot.error = "the platform refused the bot permanently"
            bot.lifecycle.change(Phase.FATAL, bot.error)
        else:
            bot.restarts += 1
            if why is not None:
                bot.error, bot.error_code = why, None
            elif bot.error is None:
                bot.error = f"worker exited with code {code}"
            delay = bot.backoff.failed(now)
            bot.retry_at = now + delay
            bot.retry_wall = time.time() + delay
            bot.lifecycle.change(Phase.BACKOFF, f"retry in {delay:.1f} s ({bot.error})")

    async def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds, re-checked after every change record; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.changes.subscribe(maxsize=1) as wakeups:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or wakeups.closed:
                    return done()
                await wakeups.get(remaining)
        return True

    def _stop(
        self, bot: ManagedBot, reason: str, *, wanted_after: bool, grace: float | None = None
    ) -> None:
        bot.wanted = wanted_after
        grace = self.settings.stop_grace if grace is None else grace
        if bot.phase == Phase.STOPPING:
            bot.stop_deadline_at = min(bot.stop_deadline_at, time.monotonic() + grace)
        elif bot.phase in (Phase.STARTING, Phase.RUNNING):
            bot.lifecycle.change(Phase.STOPPING, reason)
            bot.stop_deadline_at = time.monotonic() + grace
            if bot.process is not None:
                self._router.send(bot.identity, Stop(grace=grace))
        elif bot.phase in (Phase.BACKOFF, Phase.FATAL):
            bot.lifecycle.change(Phase.STOPPED, reason)

    async def _stop_and_wait(self, bot: ManagedBot, reason: str) -> None:
        """Stop the bot's worker and return once it is gone (SIGKILL after the grace)."""
        self._stop(bot, reason, wanted_after=False)
        await self._wait_until(lambda: bot.phase not in ALIVE, self.stop_bound())

    def stop_bound(self) -> float:
        """Longest a stop can take: the grace, then SIGKILL and its reaping (a few ticks)."""
        return self.settings.stop_grace + 10 * self.settings.tick + 2.0

    def _murder(self, bot: ManagedBot, why: str) -> None:
        """SIGKILL a worker that missed its deadline; `_reap` handles what follows."""
        logger.warning("bot %s: %s; SIGKILL pid %s", bot.bot_id, why, bot.pid)
        if bot.phase != Phase.STOPPING:
            bot.error, bot.error_code = why, None
        if bot.process is not None:
            kill(bot.process)

    def _manage(self, now: float) -> None:
        """One pass over every bot's deadlines; cheap enough for hundreds of bots."""
        settings = self.settings
        ping = now - self._last_ping_at >= settings.ping_interval
        if ping:
            self._last_ping_at = now
        for bot in list(self._bots.values()):
            phase = bot.phase
            if phase == Phase.BACKOFF and now >= bot.retry_at and bot.wanted:
                self._start(bot, f"retry {bot.backoff.attempt}")
            elif phase == Phase.STARTING and bot.process is not None:
                if now - bot.started_at > settings.start_timeout:
                    self._murder(bot, f"no hello within {settings.start_timeout:.0f} s")
            elif phase == Phase.RUNNING:
                if now - bot.last_heard_at > settings.heartbeat_timeout:
                    self._murder(bot, f"no heartbeat for {settings.heartbeat_timeout:.0f} s")
            elif phase == Phase.STOPPING and now > bot.stop_deadline_at and bot.process is not None:
                self._murder(bot, "did not stop within the grace period")
            if ping and bot.process is not None and bot.phase in ALIVE:
                self._router.send(bot.identity, Ping())

    async def _manage_forever(self) -> None:
        while True:
            try:
                self._manage(time.monotonic())
            except Exception:
                logger.exception("manage pass failed")
            await asyncio.sleep(self.settings.tick)

    def _on_message(self, identity: bytes, message: FromWorker) -> None:
        bot = self._bots.get(message.bot_id)
        if bot is None or message.incarnation != bot.incarnation or bot.phase not in ALIVE:
            logger.debug("dropped %s from stale worker %r", type(message).__name__, identity)
            return
        now = time.monotonic()
        bot.heard(now)
        match message:
            case Hello():
                bot.pid = message.pid
                if bot.phase == Phase.STARTING:
                    bot.lifecycle.change(Phase.RUNNING, "hello")
            case Heartbeat():
                bot.took(message, now)
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
        bot.took(report, now)
        detail = f" ({error})" if error else ""
        logger.info("bot %s: worker reports %s%s", bot.bot_id, message.state, detail)

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

