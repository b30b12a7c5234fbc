"""Cluster-mode figures for docs/cluster.md: `python -m bench.cluster [--kills N]`.

- failover: two real `larkfleet serve` nodes on a throwaway PostgreSQL share
  four simulator bots; the node holding bots is killed with SIGKILL and the
  time until every one of its bots reports `connected` on the survivor is
  taken, N times (the killed node is restarted and takes its share back
  between kills);
- handover: the same, with SIGTERM (graceful stop) instead of SIGKILL;
- load at rest: statements per second the lease keepers of two nodes cost
  PostgreSQL with 1,000 wanted bots, read from pg_stat_database (every
  statement is its own autocommit transaction). Lease keeping does not depend
  on what the workers do, so this part runs the keepers without workers.
"""

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from bench.postgres import PgServer, server_bin_dir
from bench.service import Service, wait_until
from simulator.client import SimClient
from simulator.testing import SimulatorThread
from store.postgres import schema
from supervisor.cluster.node import ClusterNode, LeaseTimings
from supervisor.settings import SupervisorSettings


def _node(root: Path, name: str, url: str, key: str) -> Service:
    env = {"LARKFLEET_DATABASE_URL": url, "LARKFLEET_NODE_ID": name,
           "LARKFLEET_SECRET_KEY": key}
    return Service(root / name, env=env)


def _all_on(node: Service, name: str, bots: list[str]) -> bool:
    statuses = [node.status(b) for b in bots]
    return all(s["node"] == name and s["state"] == "connected" for s in statuses)


def _moves(server: PgServer, kills: int, stops: int) -> tuple[list[float], list[float]]:
    """(failover seconds per kill, handover seconds per graceful stop)."""
    url = server.create_database()
    key = Fernet.generate_key().decode()
    root = Path(tempfile.mkdtemp(prefix="lf-cluster-bench-"))
    with SimulatorThread() as sim:
        client = SimClient(sim.url)
        nodes = {n: _node(root, n, url, key).start() for n in ("node-a", "node-b")}
        bots = []
        for i in range(4):
            app_id = f"cli_cluster_bench_{i}"
            client.create_app(app_id, "secret", pingInterval=1, reconnectInterval=1,
                              reconnectNonce=0)
            bot = nodes["node-a"].create_bot(app_id, "secret", sim.url)
            nodes["node-a"].connect(bot)
            bots.append(bot)
        failovers: list[float] = []
        handovers: list[float] = []
        try:
            for round_ in range(kills + stops):
                wait_until(lambda: all(
                    nodes["node-a"].status(b)["state"] == "connected" for b in bots)
                    and sorted(str(nodes["node-a"].status(b)["node"]) for b in bots)
                    == ["node-a", "node-a", "node-b", "node-b"], 60, "balanced")
                victim, survivor = ("node-a", "node-b") if round_ % 2 else ("node-b", "node-a")
                started = time.monotonic()
                if round_ < kills:
                    nodes[victim].kill()
                else:
                    nodes[victim].signal(signal.SIGTERM)
                wait_until(lambda s=survivor: _all_on(nodes[s], s, bots), 60, "moved",
                           interval=0.05)
                took = time.monotonic() - started
                (failovers if round_ < kills else handovers).append(took)
                print(f"{'kill' if round_ < kills else 'stop'} {victim}: {took:.2f} s",
                      file=sys.stderr)
                if nodes[victim].process and nodes[victim].process.poll() is None:
                    nodes[victim].process.wait(30)
                nodes[victim] = _node(root, victim, url, key).start()
        finally:
            for node in nodes.values():
                if node.process and node.process.poll() is None:
                    node.kill()
    return failovers, handovers


class _NoWorkers:
    def lease_gained(self, bot_id: str) -> None:
        pass

    def lease_lost(self, bot_ids: list[str]) -> None:
        pass

    async def hand_over(self, bot_id: str, since_epoch: float) -> list[tuple[str, str]]:
        return []

    async def wish_changed(self, bot_id: str, config_changed: bool) -> None:
        pass

    def api_state(self, bot_id: str) -> str:
        return "connected"

    def kill_now(self, bot_ids: list[str]) -> None:
        pass

    def connect_requested(self, bot_id: str) -> None:
        pass


def _load(server: PgServer, bots: int, seconds: float) -> float:
    """Statements per second two idle nodes' lease keepers cost, with `bots` wanted bots."""
    url = server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        schema.migrate(conn)
        conn.execute("INSERT INTO users VALUES ('u', 'u', 1, 0)")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bots (id, owner, name, app_id, app_secret, handler,"
                " desired_connected, created, updated) VALUES (%s, 'u', 'b', %s, '', '{}', 1,"
                " %s, 0)", [(f"bot_{i:05d}", f"cli_{i}", i) for i in range(bots)])

    def committed(probe: psycopg.Connection) -> int:
        row = probe.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database"
                            " WHERE datname = current_database()").fetchone()
        return int(row[0]) if row else 0

    async def run() -> float:
        timings = LeaseTimings.of(SupervisorSettings())
        nodes = [ClusterNode(url, f"n{i}", "", timings) for i in range(2)]
        for node in nodes:
            await node.start(_NoWorkers())
        while sum(len(n.held) for n in nodes) < bots or abs(
                len(nodes[0].held) - len(nodes[1].held)) > 1:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2 * timings.renew_interval)  # at rest: nothing left to move
        with psycopg.connect(url, autocommit=True) as probe:
            before = committed(probe)
            await asyncio.sleep(seconds)
            after = committed(probe)
        for node in nodes:
            await node.close()
        return (after - before - 1) / seconds

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--stops", type=int, default=3)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    bin_dir = server_bin_dir()
    if bin_dir is None:
        print("bench.cluster: PostgreSQL server binaries not found", file=sys.stderr)
        return 2
    server = PgServer(bin_dir).start()
    try:
        rate = _load(server, args.bots, args.seconds)
        print(f"load at rest: {rate:.2f} statements/s for {args.bots} bots on 2 nodes")
        failovers, handovers = _moves(server, args.kills, args.stops)
    finally:
        server.destroy()
    print(f"failover over {len(failovers)} kills: p50 {statistics.median(failovers):.2f} s,"
          f" max {max(failovers):.2f} s")
    if handovers:
        print(f"handover over {len(handovers)} graceful stops: p50"
              f" {statistics.median(handovers):.2f} s, max {max(handovers):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
