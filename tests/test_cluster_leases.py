"""Cluster mode's schema and leases on a real PostgreSQL: migrations, fencing, renewal.

The lease rules proved here are what "one holder per bot" rests on: only free
or lapsed leases are taken, the fence grows on every change of holder, expiry
is on the database's clock, renewal is one statement per node, and a node
that cannot renew stops its workers before its leases could lapse.
"""

import asyncio
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from store.postgres import schema
from store.postgres.url import masked
from supervisor.cluster.balance import fair_share, plan
from supervisor.cluster.leases import LeaseStore, LeaseView
from supervisor.cluster.node import ClusterNode, LeaseTimings


def add_bots(url: str, count: int, desired: bool = True) -> list[str]:
    """Rows straight into the schema (the registry on top is tested elsewhere)."""
    with psycopg.connect(url, autocommit=True) as conn:
        schema.migrate(conn)
        conn.execute("INSERT INTO users VALUES ('u', 'u', 1, 0) ON CONFLICT DO NOTHING")
        start = conn.execute("SELECT count(*) FROM bots").fetchone()[0]
        ids = [f"bot_{start + i:04d}" for i in range(count)]
        for i, bot_id in enumerate(ids):
            conn.execute(
                "INSERT INTO bots (id, owner, name, app_id, app_secret, handler,"
                " desired_connected, created, updated) VALUES (%s, 'u', 'b', %s, '', '{}', %s,"
                " %s, 0)", (bot_id, f"cli_{bot_id}", int(desired), time.time() + i))
    return ids


@pytest.fixture
def db(pg_url: str) -> Iterator[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        schema.migrate(conn)
    yield pg_url


async def store(url: str, node: str) -> LeaseStore:
    return LeaseStore(await psycopg.AsyncConnection.connect(url, autocommit=True), node)


def test_migrations_run_once_when_nodes_start_together(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def boot() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                barrier.wait()
                schema.migrate(conn)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=boot) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in rows] == list(range(1, len(schema.MIGRATIONS) + 1))
        assert schema.migrate(conn) == len(schema.MIGRATIONS)


def test_acquire_takes_only_free_or_lapsed_and_fence_grows(db: str) -> None:
    bots = add_bots(db, 3)

    async def scenario() -> None:
        a, b = await store(db, "node-a"), await store(db, "node-b")
        assert await a.acquire(bots, ttl=0.5) == dict.fromkeys(bots, 1)
        assert await b.acquire(bots, ttl=5) == {}, "live leases are never taken"
        await asyncio.sleep(0.7)  # the database's clock passes the expiry
        assert await a.renew("", ttl=5) == {}, "a lapsed lease is not renewed"
        assert await b.acquire(bots[:2], ttl=5) == {bots[0]: 2, bots[1]: 2}
        assert await b.release([bots[0]]) == [bots[0]]
        assert await a.acquire(bots, ttl=5) == {bots[0]: 3, bots[2]: 2}
        assert await b.renew("", ttl=5) == {bots[1]: 2}

    asyncio.run(scenario())


def test_racing_nodes_never_share_a_bot(db: str) -> None:
    bots = add_bots(db, 40)

    async def scenario() -> None:
        stores = [await store(db, f"node-{i}") for i in range(3)]
        results = await asyncio.gather(*(s.acquire(bots, ttl=5) for s in stores))
        won = [bot for result in results for bot in result]
        assert sorted(won) == sorted(bots), "every bot taken exactly once"

    asyncio.run(scenario())


def test_renewal_is_one_statement_on_the_database_clock(db: str) -> None:
    bots = add_bots(db, 50)

    async def scenario() -> None:
        a = await store(db, "node-a")
        await a.acquire(bots, ttl=2)
        with psycopg.connect(db, autocommit=True) as probe:
            before = probe.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
            renewed = await a.renew("http://a", ttl=30)
            await asyncio.sleep(0.7)  # the statistics collector's flush interval is 0.5 s
            after = probe.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
            left = probe.execute(
                "SELECT min(extract(epoch FROM expires_at - now())),"
                " max(extract(epoch FROM expires_at - now())) FROM bot_leases").fetchone()
            node = probe.execute("SELECT address FROM nodes WHERE id = 'node-a'").fetchone()
        assert renewed == dict.fromkeys(bots, 1)
        assert after - before <= 3, "one renew statement (plus the probe's own reads)"
        assert 28 < float(left[0]) <= float(left[1]) <= 30
        assert node == ("http://a",)

    asyncio.run(scenario())


def test_fair_share_and_rate_limited_moves() -> None:
    assert [fair_share(n, ["a", "b", "c"], 10) for n in "abc"] == [4, 3, 3]
    assert fair_share("d", ["a", "b"], 10) == 0
    views = [LeaseView(f"bot{i}", True, "a", 1, None, 0.0) for i in range(10)]
    held = {v.bot_id for v in views}
    joined = plan("a", ["a", "b"], views, held, max_moves=2)
    assert len(joined.release) == 2 and joined.acquire == [] and joined.share == 5
    leaving = plan("a", ["b"], views, held, max_moves=2)
    assert len(leaving.release) == 10, "a draining node hands everything over"
    free = [LeaseView(f"bot{i}", True, None, 0, None, 0.0) for i in range(10)]
    taken = [set(plan(n, ["a", "b"], free, set(), 2).acquire) for n in "ab"]
    assert len(taken[0]) == len(taken[1]) == 5
    unwanted = [LeaseView("x", False, "a", 1, None, 0.0)]
    assert plan("a", ["a"], unwanted, {"x"}, 2).release == ["x"]


class FakeWorkers:
    """The supervisor seam: records what the node asked, runs nothing."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.stopped_at: dict[str, float] = {}
        self.killed_at: float | None = None
        self.connects: list[str] = []

    def lease_gained(self, bot_id: str) -> None:
        self.running.add(bot_id)

    def lease_lost(self, bot_ids: list[str]) -> None:
        for bot_id in bot_ids:
            self.running.discard(bot_id)
            self.stopped_at[bot_id] = time.monotonic()

    async def hand_over(self, bot_id: str, since_epoch: float) -> list[tuple[str, str]]:
        self.running.discard(bot_id)
        return []

    async def wish_changed(self, bot_id: str, config_changed: bool) -> None:
        pass

    def api_state(self, bot_id: str) -> str:
        return "connected"

    def kill_now(self, bot_ids: list[str]) -> None:
        """Called from the last-resort thread: record the time, like lease_lost."""
        self.killed_at = time.monotonic()

    def connect_requested(self, bot_id: str) -> None:
        self.connects.append(bot_id)


FAST = LeaseTimings(ttl=3.0, renew_interval=0.5, margin=1.0, max_moves=3)


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


def test_nodes_spread_bots_and_hand_them_over_on_leave(db: str) -> None:
    add_bots(db, 9)

    async def scenario() -> None:
        fleets = [FakeWorkers() for _ in range(3)]
        nodes = [ClusterNode(db, f"n{i}", f"http://n{i}", FAST) for i in range(3)]
        await nodes[0].start(fleets[0])
        await until(lambda: len(fleets[0].running) == 9, 5, "the first node takes all")
        for node, fleet in zip(nodes[1:], fleets[1:], strict=True):
            await node.start(fleet)
        await until(lambda: [len(f.running) for f in fleets] == [3, 3, 3], 10, "even spread")
        all_running = [b for f in fleets for b in f.running]
        assert len(all_running) == len(set(all_running)) == 9
        await nodes[2].leave(timeout=5)
        await nodes[2].close()
        await until(lambda: sorted(len(f.running) for f in fleets) == [0, 4, 5], 5,
                    "the leaver's bots taken by the others")
        for node in nodes[:2]:
            await node.close()

    asyncio.run(scenario())


def test_a_dead_nodes_leases_are_taken_at_their_lapse_not_a_round_later(db: str) -> None:
    """Failover time: a survivor that saw a lease lapsing runs its next round at the
    lapse. Here the lapse (1 s) falls between two of its rounds (every 2 s)."""
    bots = add_bots(db, 2)
    timings = LeaseTimings(ttl=4.0, renew_interval=2.0, margin=1.0, max_moves=3)

    async def scenario() -> None:
        dead = await store(db, "dead")  # took the bots and died: never renews
        assert len(await dead.acquire(bots, ttl=1.0)) == 2
        started = time.monotonic()
        fleet = FakeWorkers()
        node = ClusterNode(db, "survivor", "", timings)
        await node.start(fleet)  # its first round sees both leases live, 1 s left
        await until(lambda: len(fleet.running) == 2, 1.6, "taken at the lapse")
        assert time.monotonic() - started < 1.6
        await node.close()

    asyncio.run(scenario())


def test_cut_off_node_stops_workers_before_its_leases_lapse(private_pg) -> None:
    url = private_pg.create_database()
    bots = add_bots(url, 4)

    async def scenario() -> None:
        fleet = FakeWorkers()
        node = ClusterNode(url, "n0", "", FAST)
        await node.start(fleet)
        await until(lambda: len(fleet.running) == 4, 5, "bots taken")
        await asyncio.to_thread(private_pg.stop, "immediate")
        await until(lambda: not fleet.running, FAST.ttl + 2, "workers stopped")
        assert not node.healthy()
        # The database set each expiry to its now() + ttl when it ran the last renewal,
        # which was after the node sent it: no lease lapses before last_renewal + ttl.
        last_stop = max(fleet.stopped_at[b] for b in bots)
        assert last_stop < node.last_renewal + FAST.ttl - FAST.margin / 2
        await node.close()

    asyncio.run(scenario())


def test_password_is_masked() -> None:
    assert masked("postgresql://app:s3cr%40t@db:5432/lf") == "postgresql://app:***@db:5432/lf"
    assert masked("postgresql://db/lf") == "postgresql://db/lf"


def test_a_stuck_event_loop_still_kills_the_workers_before_the_lease_lapses(db: str) -> None:
    """The loop's watchdog cannot run while the loop is blocked (a hung synchronous call,
    a starved process): a thread of the node kills the workers itself, still in time."""
    add_bots(db, 2)

    async def scenario() -> None:
        fleet = FakeWorkers()
        node = ClusterNode(db, "n0", "", FAST)
        await node.start(fleet)
        await until(lambda: len(fleet.running) == 2, 5, "bots taken")
        last_renewal = node.last_renewal
        time.sleep(FAST.ttl + 0.5)  # block the event loop past the lease's lapse
        assert fleet.killed_at is not None, "the last resort did not fire"
        assert fleet.killed_at < node.last_renewal + FAST.ttl
        assert node.last_renewal == last_renewal  # no renewal could run meanwhile
        await node.close()

    asyncio.run(scenario())


def test_a_connect_through_any_node_reaches_the_holder_at_once(db: str) -> None:
    """NOTIFY carries the connect: the holder retries a bot in backoff or error now."""
    (bot,) = add_bots(db, 1)

    async def scenario() -> None:
        fleet = FakeWorkers()
        node = ClusterNode(db, "n0", "", FAST)
        await node.start(fleet)
        await until(lambda: bot in fleet.running, 5, "bot taken")
        await until(lambda: node.listening, 5, "listening")
        with psycopg.connect(db, autocommit=True) as other_node:
            other_node.execute("SELECT pg_notify('larkfleet', %s)", (f"connect:{bot}",))
            other_node.execute("SELECT pg_notify('larkfleet', 'connect:bot_elsewhere')")
        await until(lambda: fleet.connects == [bot], 2, "the holder heard the connect")
        await node.close()

    asyncio.run(scenario())
