"""One cluster node's lease keeper: renew, plan, acquire, hand over, and stop in time.

Rounds run every `renew_interval` seconds, and at once when a NOTIFY arrives
(another node released a lease, or a bot changed through any node's API).
A round is: one renew statement (heartbeat + every held lease), a read of
the bots and the live nodes, then the moves the balance policy plans.

The safety rule does not depend on the database answering: a watchdog task
stops every worker this node runs when its local monotonic deadline passes.
That deadline is the send time of the last successful renewal plus the lease
period minus a margin, so workers are gone before any lease could lapse on
the database's clock and another node could take it.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from store.postgres.connection import BOUNDED
from store.postgres.schema import CHANNEL
from supervisor.cluster.balance import plan
from supervisor.cluster.leases import LeaseStore, LeaseView, NodeView
from supervisor.placement import AnswerKeys
from supervisor.settings import SupervisorSettings
from worker.spool import MIN_RETENTION_S

logger = logging.getLogger(__name__)

ANSWER_WINDOW_S = MIN_RETENTION_S
"""Seconds answered events are kept for dedup across nodes: the platform redelivers for
about 7.1 h (retries at 15 s, 5 min, 1 h, 6 h), and a spool keeps done rows as long."""
ANSWER_BATCH_S = 0.2
"""Seconds answered events gather before one statement publishes them all."""
HANDOVER_LOOKBACK_S = 60.0
"""At a handover the old holder re-reads this many seconds of answered events from the
spool: the last ones may still be on their way to it (a worker reports 0.2 s after it answers)."""
MAX_QUEUED_ANSWERS = 100_000
"""Answered events kept while the database cannot take them; the oldest go first."""
PRUNE_EVERY = 300
"""Rounds between two prunes of old answered events (by the first live node only)."""

LAPSE_SLACK_S = 0.05
"""Seconds after another node's lease lapses (as the database said when read) that the
round meant to take it runs: late rather than early, which would find it still live."""


@dataclass(frozen=True)
class LeaseTimings:
    """Lease period and rhythm (seconds); defaults in SupervisorSettings (lease_*).

    A dead node's leases lapse at most `ttl` after its last renewal; another
    node takes them in a round it runs at the lapse, and connects in ~0.1-1 s.
    """

    ttl: float
    renew_interval: float
    margin: float
    """Workers stop this long before the lease could lapse (stop grace fits inside)."""
    max_moves: int
    """Bots handed over per round when rebalancing after a join."""
    statement_timeout: float = 2.0

    @classmethod
    def of(cls, settings: SupervisorSettings) -> "LeaseTimings":
        return cls(ttl=settings.lease_ttl, renew_interval=settings.lease_renew_interval,
                   margin=settings.lease_margin, max_moves=settings.lease_max_moves,
                   statement_timeout=min(2.0, settings.lease_renew_interval))

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval < self.ttl - self.margin:
            raise ValueError("lease timings: need 0 < renew_interval < ttl - margin")


class Workers(Protocol):
    """What the node asks of the supervisor (implemented by Supervisor)."""

    def lease_gained(self, bot_id: str) -> None:
        """The lease is ours: start the worker if the bot is wanted."""

    def lease_lost(self, bot_ids: list[str]) -> None:
        """The leases are gone or about to lapse: stop those workers now (within a second)."""

    async def hand_over(self, bot_id: str, since_epoch: float) -> AnswerKeys:
        """Stop the worker gracefully; return once it has exited, with the events its
        spool marked done since `since_epoch`."""

    async def wish_changed(self, bot_id: str, config_changed: bool) -> None:
        """The bot's row changed on some node: apply it (restart on a config change)."""

    def api_state(self, bot_id: str) -> str:
        """The bot's API state here, published for the other nodes."""

    def kill_now(self, bot_ids: list[str]) -> None:
        """SIGKILL these workers at once; called from another thread (the last resort)."""

    def connect_requested(self, bot_id: str) -> None:
        """A connect was asked through some node: retry a bot in backoff or error now."""


class ClusterNode:
    shares_answers = True
    lapses = True

    def __init__(self, url: str, node_id: str, address: str, timings: LeaseTimings) -> None:
        self.url = url
        self.node_id = node_id
        self.address = address
        self.timings = timings
        self.held: dict[str, int] = {}
        """Bot id -> fence of every lease this node holds."""
        self.releasing: set[str] = set()
        self.bots: dict[str, LeaseView] = {}
        self.nodes: list[NodeView] = []
        self.draining = False
        self.rounds = 0
        self._deadline = 0.0
        self._replanned = False
        self._next_lapse_mono = float("inf")
        """Monotonic time the earliest lease another node holds lapses, unless renewed:
        a round runs then, not up to a renewal interval later (failover time)."""
        self.last_renewal = 0.0
        """Monotonic send time of the last successful renewal: no lease lapses before +ttl."""
        self._seen: dict[str, tuple[bool, float]] = {}
        """Bot id -> (desired, updated) last applied, to act on changes only."""
        self._unreleased: set[str] = set()
        """Handed over (worker gone) but the release statement failed: retried each round."""
        self._published: dict[str, str] = {}
        self._answers: list[tuple[str, str, str]] = []
        """(bot, event id, message id) answered here and not yet in the database."""
        self._answers_ready = asyncio.Event()
        self._unlearned: set[str] = set()
        """Bots taken whose workers have not yet learnt what other nodes answered."""
        self._taken_epoch: dict[str, float] = {}
        """Bot id -> wall time this node took its lease (what a handover re-reads from)."""
        self._store: LeaseStore | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._workers: Workers | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing = False
        self._closed = threading.Event()
        self.listening = False
        """True while the LISTEN connection is up (the periodic re-read covers the rest)."""

    # -- what the supervisor and the API read ---------------------------------------

    def may_run(self, bot_id: str) -> bool:
        """Whether this node may run the bot's worker now: lease held, in time, not leaving."""
        return (bot_id in self.held and bot_id not in self.releasing
                and time.monotonic() < self._deadline)

    def holder(self, bot_id: str) -> str | None:
        """The node holding the bot's lease (this one included); None when free."""
        if bot_id in self.held:
            return self.node_id
        view = self.bots.get(bot_id)
        return view.holder if view is not None else None

    def published_state(self, bot_id: str) -> str | None:
        view = self.bots.get(bot_id)
        return view.state if view is not None else None

    async def locate(self, bot_id: str) -> str | None:
        """The API address of the node holding the bot now, read from the database; a
        wanted bot that no node holds yet (just created or connected, a lease changing
        hands) is waited for up to one renewal interval. None: held here, or by no node."""
        deadline = time.monotonic() + self.timings.renew_interval
        while bot_id not in self.held:
            try:
                async with self._lock, asyncio.timeout(self.timings.statement_timeout):
                    found = await (await self._connected()).holder_of(bot_id)
            except (psycopg.Error, OSError, TimeoutError) as error:
                logger.warning("node %s: cannot locate %s's holder (%s)", self.node_id,
                               bot_id, type(error).__name__)
                return None  # answered here: "no running worker", which is true here
            if found is None:
                return None
            holder, address, wanted = found
            if holder == self.node_id:
                return None
            if holder is not None:
                return address or None
            if not wanted or time.monotonic() >= deadline:
                return None
            self._wake.set()
            await asyncio.sleep(0.1)
        return None

    async def wait_released(self, bot_id: str, timeout: float) -> None:
        """Return once no node holds the bot (as of this node's latest round), or on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.holder(bot_id) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def address_of(self, node_id: str) -> str | None:
        return next((n.address for n in self.nodes if n.id == node_id), None)

    def healthy(self) -> bool:
        """Renewals are in time: what readiness reports in cluster mode."""
        return time.monotonic() < self._deadline

    # -- life ---------------------------------------------------------------------------

    async def start(self, workers: Workers) -> None:
        """Run the first round (so a node is counted before it plans), then the tasks.

        Raises psycopg.Error when the database cannot be reached at start.
        """
        self._workers = workers
        await self._round()
        for coro in (self._rounds(), self._listen(), self._watchdog(), self._publish_answers()):
            self._spawn(coro)
        threading.Thread(target=self._last_resort, name="lease-last-resort", daemon=True).start()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def leave(self, timeout: float) -> None:
        """Graceful stop: hand every bot over, then remove this node's row (bounded)."""
        self.draining = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self.held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.held:
            logger.warning("node %s: %d lease(s) not handed over in time", self.node_id,
                           len(self.held))
        with contextlib.suppress(Exception):
            async with self._lock, asyncio.timeout(self.timings.statement_timeout):
                store = await self._connected()
                await store.leave()

    async def close(self) -> None:
        self._closed.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.conn.close()

    # -- rounds -----------------------------------------------------------------------

    async def _connected(self) -> LeaseStore:
        if self._store is None or self._store.conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, **BOUNDED)
            self._store = LeaseStore(conn, self.node_id)
        return self._store

    async def _drop_connection(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.conn.close()
            self._store = None

    async def _rounds(self) -> None:
        while True:
            wait = min(self.timings.renew_interval, self._next_lapse_mono - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
                if self._failing:
                    logger.info("node %s: database reachable again", self.node_id)
                self._failing = False
            except (psycopg.Error, OSError, TimeoutError) as error:
                if not self._failing:
                    logger.error("node %s: lease round failed: %s", self.node_id,
                                 type(error).__name__)
                self._failing = True
                await self._drop_connection()
            except Exception:
                logger.exception("node %s: lease round crashed", self.node_id)
                await self._drop_connection()

    async def _round(self) -> None:
        timings = self.timings
        workers = self._workers
        assert workers is not None
        async with self._lock, asyncio.timeout(timings.statement_timeout * 3):
            store = await self._connected()
            sent = time.monotonic()
            renewed = await store.renew(self.address, timings.ttl, self.draining)
            self.last_renewal = sent
            self._deadline = sent + timings.ttl - timings.margin
            if self._unreleased:
                for bot_id in await store.release(sorted(self._unreleased)):
                    renewed.pop(bot_id, None)
                self._unreleased.clear()
            bots = await store.view()
            read_mono = time.monotonic()
            nodes = await store.nodes(timings.ttl)
        self.rounds += 1
        live_ids = sorted(n.id for n in nodes)
        if self.rounds % PRUNE_EVERY == 0 and live_ids[:1] == [self.node_id]:
            async with self._lock, asyncio.timeout(timings.statement_timeout):
                await (await self._connected()).prune_answers(ANSWER_WINDOW_S)
        self._next_lapse_mono = read_mono + LAPSE_SLACK_S + min(
            (v.lapses_in for v in bots if v.desired and v.lapses_in is not None
             and v.holder != self.node_id), default=float("inf"))
        self.bots = {view.bot_id: view for view in bots}
        self.nodes = nodes
        self._apply_renewal(renewed, workers)
        await self._apply_changes(workers)
        live = [n.id for n in nodes if not n.draining and n.id != self.node_id]
        if not self.draining:
            live.append(self.node_id)
        moves = plan(self.node_id, live, bots, set(self.held) - self.releasing,
                     timings.max_moves)
        if moves.acquire:
            async with self._lock, asyncio.timeout(timings.statement_timeout):
                store = await self._connected()
                won = await store.acquire(moves.acquire, timings.ttl)
            if len(won) < len(moves.acquire) and not self._replanned:
                self._replanned = True  # another node won a race: plan again at once
                self._wake.set()
            else:
                self._replanned = False
            for bot_id, fence in won.items():
                self.held[bot_id] = fence
                self._remember(bot_id)
                self._took(bot_id)
                logger.info("node %s: lease on %s taken (fence %d)", self.node_id, bot_id, fence)
                workers.lease_gained(bot_id)
        for bot_id in moves.release:
            if bot_id not in self.releasing:
                self.releasing.add(bot_id)
                self._spawn(self._hand_over(bot_id))
        await self._publish(workers)

    def _apply_renewal(self, renewed: dict[str, int], workers: Workers) -> None:
        lost = [b for b in self.held if b not in renewed]
        gained = [b for b in renewed if b not in self.held]
        self.held = dict(renewed)
        for bot_id in lost:
            self.releasing.discard(bot_id)
            self._seen.pop(bot_id, None)
            self._published.pop(bot_id, None)
            self._unlearned.discard(bot_id)
            self._taken_epoch.pop(bot_id, None)
        if lost:
            logger.warning("node %s: lease(s) lost: %s", self.node_id, ", ".join(lost))
            workers.lease_lost(lost)
        for bot_id in gained:
            self._remember(bot_id)
            self._took(bot_id)
            workers.lease_gained(bot_id)

    def _took(self, bot_id: str) -> None:
        self._unlearned.add(bot_id)
        self._taken_epoch[bot_id] = time.time()

    def _remember(self, bot_id: str) -> None:
        view = self.bots.get(bot_id)
        self._seen[bot_id] = (view.desired, view.updated) if view else (False, 0.0)

    async def _apply_changes(self, workers: Workers) -> None:
        """The periodic re-read behind NOTIFY: wish or config changes of held bots."""
        for bot_id in list(self.held):
            view = self.bots.get(bot_id)
            seen = self._seen.get(bot_id)
            if view is None or seen is None or bot_id in self.releasing:
                continue
            if seen != (view.desired, view.updated):
                self._remember(bot_id)
                await workers.wish_changed(bot_id, view.updated != seen[1])

    async def _publish(self, workers: Workers) -> None:
        states = {b: workers.api_state(b) for b in self.held if b not in self.releasing}
        changed = {b: s for b, s in states.items() if self._published.get(b) != s}
        if not changed:
            return
        async with self._lock, asyncio.timeout(self.timings.statement_timeout):
            store = await self._connected()
            await store.publish(changed)
        self._published.update(changed)

    async def _hand_over(self, bot_id: str) -> None:
        """Stop the worker (it drains), then release, so the next holder starts clean."""
        workers = self._workers
        assert workers is not None
        started = time.monotonic()
        try:
            since_epoch = max(self._taken_epoch.get(bot_id, 0.0),
                              time.time() - HANDOVER_LOOKBACK_S)
            last = await workers.hand_over(bot_id, since_epoch)
            self.answered(bot_id, last)
            async with self._lock, asyncio.timeout(self.timings.statement_timeout):
                store = await self._connected()
                await self._flush_answers(store)  # before the next holder can read them
                await store.release([bot_id])
            self.held.pop(bot_id, None)
            self._published.pop(bot_id, None)
            logger.info("node %s: %s handed over in %.2f s", self.node_id, bot_id,
                        time.monotonic() - started)
        except Exception as error:
            logger.error("node %s: releasing %s failed (%s); retried next round",
                         self.node_id, bot_id, type(error).__name__)
            self._unreleased.add(bot_id)
        finally:
            if bot_id not in self._unreleased:
                self.releasing.discard(bot_id)

    # -- dedup across nodes ---------------------------------------------------------

    def answered(self, bot_id: str, keys: AnswerKeys) -> None:
        """Queue answered events for the database (one statement per ANSWER_BATCH_S)."""
        if keys:
            self._answers.extend((bot_id, event_id, message_id) for event_id, message_id in keys)
            if len(self._answers) > MAX_QUEUED_ANSWERS:  # the database is away for long
                del self._answers[:len(self._answers) - MAX_QUEUED_ANSWERS]
            self._answers_ready.set()

    async def answered_elsewhere(self, bot_id: str) -> AnswerKeys:
        """What any node answered for the bot in ANSWER_WINDOW_S, once per lease taken (the
        first start after it); raises psycopg.Error or TimeoutError when unreadable."""
        if bot_id not in self._unlearned:
            return []
        async with self._lock, asyncio.timeout(self.timings.statement_timeout):
            keys = await (await self._connected()).answers_of(bot_id, ANSWER_WINDOW_S)
        self._unlearned.discard(bot_id)
        return keys

    async def _flush_answers(self, store: LeaseStore) -> None:
        """Write what is queued (hold `_lock`); on failure it stays queued."""
        rows, self._answers = self._answers, []
        try:
            await store.record_answers(rows)
        except BaseException:
            self._answers[:0] = rows
            raise

    async def _publish_answers(self) -> None:
        """Write-behind: answered events reach the database in batches, off the ACK path."""
        while True:
            await self._answers_ready.wait()
            await asyncio.sleep(ANSWER_BATCH_S)
            self._answers_ready.clear()
            try:
                async with self._lock, asyncio.timeout(self.timings.statement_timeout):
                    await self._flush_answers(await self._connected())
            except (psycopg.Error, OSError, TimeoutError) as error:
                logger.warning("node %s: %d answered event(s) not published yet (%s)",
                               self.node_id, len(self._answers), type(error).__name__)
                self._answers_ready.set()
                await asyncio.sleep(self.timings.renew_interval)

    async def _watchdog(self) -> None:
        """Stop every worker when renewals have been missing for too long."""
        workers = self._workers
        assert workers is not None
        while True:
            await asyncio.sleep(0.1)
            if self.held and time.monotonic() >= self._deadline:
                lost = list(self.held)
                logger.error("node %s: leases not renewed in time; stopping %d worker(s)",
                             self.node_id, len(lost))
                self.held.clear()
                self.releasing.clear()
                self._published.clear()
                workers.lease_lost(lost)

    def _on_notice(self, payload: str) -> None:
        """Every notification wakes a round; a connect also retries a held bot at once."""
        self._wake.set()
        kind, _, bot_id = payload.partition(":")
        if kind == "connect" and bot_id in self.held and self._workers is not None:
            self._workers.connect_requested(bot_id)

    def _last_resort(self) -> None:
        """The same rule as `_watchdog`, from a thread: if the event loop is stuck (a
        blocking call, a starved process), the loop's watchdog cannot run, so this thread
        SIGKILLs the workers itself, margin/2 after the deadline, still before any lease
        can lapse. It acts once per deadline; nothing here touches asyncio state."""
        acted_on = 0.0
        while not self._closed.is_set():
            self._closed.wait(0.1)
            deadline = self._deadline
            if deadline == acted_on or time.monotonic() < deadline + self.timings.margin / 2:
                continue
            try:
                held = list(self.held)
            except RuntimeError:  # resized by the loop meanwhile: it is alive, look again
                continue
            if held:
                acted_on = deadline
                logger.error("node %s: event loop stuck past the lease deadline; SIGKILL %d"
                             " worker(s)", self.node_id, len(held))
                workers = self._workers
                if workers is not None:
                    workers.kill_now(held)

    async def _listen(self) -> None:
        """LISTEN for other nodes' changes; every notification wakes a round at once."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, **BOUNDED)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._wake.set()  # whatever was missed while not listening
                    async for notice in conn.notifies():
                        self._on_notice(notice.payload)
            except (psycopg.Error, OSError) as error:
                logger.debug("node %s: listener: %s", self.node_id, type(error).__name__)
            self.listening = False
            await asyncio.sleep(self.timings.renew_interval)
