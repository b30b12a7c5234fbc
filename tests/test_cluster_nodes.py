"""Cluster mode end to end: real `larkfleet serve` nodes, real PostgreSQL, the simulator.

Lease timings are the shipped defaults (8 s lease, 2 s renewal, 3 s margin),
so the failover bound proved here is the one docs/cluster.md promises.
"""

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.fixtures.postgres import PgServer
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp

FAILOVER_BOUND = 15.0
HOOK_TOKEN = "cluster-verification-token"
HOOK_KEY = "cluster-encrypt-key"


class Cluster:
    """Nodes sharing one database and one secret key; each on its own data directory."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.key = Fernet.generate_key().decode()
        self.nodes: dict[str, Service] = {}
        self.server: PgServer | None = None

    def launch(self, *names: str) -> list[Service]:
        """Start the nodes in parallel; returns them once every one is ready."""
        started = []
        for name in names:
            env = {"LARKFLEET_DATABASE_URL": self.url, "LARKFLEET_NODE_ID": name,
                   "LARKFLEET_SECRET_KEY": self.key}
            node = self.nodes.get(name) or Service(self.root / name, env=env)
            self.nodes[name] = node
            node.data_dir.mkdir(parents=True, exist_ok=True)
            command = [*_serve_command(node)]
            log = (node.data_dir / "serve.out").open("ab")
            import subprocess

            node.process = subprocess.Popen(command, env=node.env, stdout=log, stderr=log)
            started.append(node)
        for node in started:
            wait_until(node._ready, 60, f"node {node.data_dir.name} ready")
        return started

    def holders(self, bot_ids: list[str], via: Service) -> dict[str, str | None]:
        """Bot id -> `node` of its status, as one node's API reports it."""
        return {b: via.status(b)["node"] for b in bot_ids}

    def close(self) -> None:
        for node in self.nodes.values():
            if node.process and node.process.poll() is None:
                node.kill()


def _serve_command(node: Service) -> list[str]:
    from tests.fixtures.service import LARKFLEET

    return [LARKFLEET, "serve", "--data-dir", str(node.data_dir), "--port", str(node.port)]


@pytest.fixture
def cluster(tmp_path: Path, private_pg: PgServer) -> Iterator[Cluster]:
    """Nodes on a PostgreSQL server of the test's own: the scenario ends by stopping it."""
    group = Cluster(tmp_path, private_pg.create_database())
    group.server = private_pg
    yield group
    group.close()


def make_bots(node: Service, sim_app: Callable[..., SimApp], count: int) -> dict[str, SimApp]:
    bots = {}
    for _ in range(count):
        app = sim_app()
        bot_id = node.create_bot(app.app_id, app.app_secret, app.url)
        node.connect(bot_id)
        bots[bot_id] = app
    return bots


def connected_once(bots: dict[str, SimApp], nodes: list[Service]) -> bool:
    """Every bot connected, through exactly one connection, per every node's API."""
    if any(app.info()["connections"] != 1 for app in bots.values()):
        return False
    return all(node.status(b)["state"] == "connected" for node in nodes for b in bots)


@pytest.mark.timeout(240)  # a hang guard for the phases of one test (each bound is below)
def test_spread_failover_dedup_rejoin_handover_and_cut_off(
    cluster: Cluster, sim_app: Callable[..., SimApp]
) -> None:
    """One scenario on three nodes, so they start once: spread and agree, any node answers
    for every bot, an event answered on one node, then kill -9 that node (its bots
    connected on the two others <= 15 s) and the platform redelivers the event there
    (same event id, and the same message under a new event id): not answered again;
    restart it (it takes its share back), stop one gracefully while events flow
    (handover: no reply lost or doubled), then cut the last two off PostgreSQL (they
    close every connection before their leases could lapse)."""
    a, b, c = nodes = cluster.launch("node-a", "node-b", "node-c")
    bots = make_bots(b, sim_app, 6)
    wait_until(lambda: connected_once(bots, nodes), 30, "every bot connected once")
    holders = cluster.holders(list(bots), via=a)
    assert holders == cluster.holders(list(bots), via=b) == cluster.holders(list(bots), via=c)
    assert sorted(holders.values()) == ["node-a"] * 2 + ["node-b"] * 2 + ["node-c"] * 2
    assert a.request("GET", "/readyz").json() == {"status": "ready", "node": "node-a"}
    for bot, app in bots.items():  # held elsewhere: forwarded to the holder
        for node in nodes:
            logs = node.request("GET", f"/api/feishu/bots/{bot}/logs?tail=50")
            assert logs.status_code == 200 and "connected" in logs.text, logs.text
            sent = node.request("POST", f"/api/feishu/bots/{bot}/messages",
                                json={"receiveId": "oc_x", "receiveIdType": "chat_id",
                                      "text": f"hello via {node.data_dir.name}"})
            assert sent.status_code == 200, sent.text
        assert len(app.sent()) == len(nodes)

    # A webhook-mode bot, pushed to through every node: a non-holder forwards the push.
    hook_app = sim_app(verification_token=HOOK_TOKEN, encrypt_key=HOOK_KEY)
    hook = a.create_bot(hook_app.app_id, hook_app.app_secret, hook_app.url,
                        useWebSocket=False, verificationToken=HOOK_TOKEN, encryptKey=HOOK_KEY)
    wait_until(lambda: a.status(hook)["node"] is not None, 15, "the webhook bot held")
    for node in nodes:
        pushed = hook_app.client.webhook(hook_app.app_id, f"{node.url}/webhook/feishu/{hook}",
                                         text=f"pushed to {node.data_dir.name}")
        assert pushed["status"] == 200, pushed
    wait_until(lambda: len(hook_app.sent()) == len(nodes), 15, "every push answered")
    deleted = b.request("DELETE", f"/api/feishu/bots/{hook}")  # through another node
    assert deleted.status_code in (200, 204), deleted.text
    wait_until(lambda: all(n.request("GET", f"/api/feishu/bots/{hook}").status_code == 404
                           for n in nodes), 15, "the webhook bot gone on every node")
    wait_until(lambda: connected_once(bots, nodes), 30, "every bot connected once")
    holders = cluster.holders(list(bots), via=a)

    # An event answered on node-c, its key published for the others before the kill.
    moved = [bot for bot, holder in holders.items() if holder == "node-c"]
    probe, probe_app = moved[0], bots[moved[0]]
    chat = {"chat_id": "oc_moved", "wait_ack": 5}
    first = probe_app.push("answered once", message_id="om_moved_1", **chat)
    assert first["ack"] is not None, first
    wait_until(lambda: len(_replies(probe_app)) == 1, 15, "the event answered on node-c")
    wait_until(lambda: _published(cluster.url, probe, first["eventId"]), 10,
               "node-c published the answered event")

    c.kill()  # SIGKILL: its workers die with it (parent-death signal)
    killed_at = time.monotonic()
    wait_until(lambda: all(a.status(x)["node"] in ("node-a", "node-b")
                           and a.status(x)["state"] == "connected" for x in moved)
               and all(bots[x].info()["connections"] == 1 for x in moved),
               FAILOVER_BOUND, "the dead node's bots connected on the two others")
    assert time.monotonic() - killed_at <= FAILOVER_BOUND
    assert {a.status(x)["node"] for x in moved} == {"node-a", "node-b"}, "spread over both"

    # The platform redelivers to the new holder: the same message under a new event id,
    # then the same event. Neither is answered again (the first, dropped, leaves no trace
    # for the second to match); a fresh event after them is (the chat's events run in
    # order, so its reply comes after any reply to those two).
    renamed = probe_app.push("the same message again", message_id="om_moved_1", **chat)
    again = probe_app.push("answered once", event_id=first["eventId"],
                           message_id="om_moved_1", **chat)
    assert again["ack"] is not None and renamed["ack"] is not None, (again, renamed)
    probe_app.push("fresh", **chat)
    wait_until(lambda: any("fresh" in _text(m) for m in _replies(probe_app)), 15,
               "the fresh event answered on the new holder")
    texts = [_text(m) for m in _replies(probe_app)]
    assert len(texts) == 2, f"a redelivered event was answered twice: {texts}"
    assert not any(m.get("duplicate") for m in probe_app.sent())

    (c,) = cluster.launch("node-c")
    nodes = [a, b, c]
    wait_until(lambda: sorted(map(str, cluster.holders(list(bots), via=a).values()))
               == ["node-a"] * 2 + ["node-b"] * 2 + ["node-c"] * 2, 30,
               "the rejoined node's share back")
    wait_until(lambda: connected_once(bots, nodes), 30, "all connected once again")

    pushed: dict[str, list[tuple[str, str]]] = {bot: [] for bot in bots}
    """Bot -> (event id, text) of every event pushed, in one chat per bot (so in order)."""

    def push_round(tag: str) -> None:
        for bot, app in bots.items():
            deadline = time.monotonic() + FAILOVER_BOUND
            while True:  # the platform retries an event no connection took
                try:
                    text = f"{tag}-{bot}"
                    event = app.push(text, chat_id=f"oc_round_{bot}")["eventId"]
                    pushed[bot].append((event, text))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    for i in range(3):
        push_round(f"before{i}")
    b.signal(signal.SIGTERM)
    stop_started = time.monotonic()
    i = 0
    while b.process.poll() is None:
        push_round(f"during{i}")
        i += 1
        assert time.monotonic() - stop_started < 30, "the leaving node did not exit"
    assert b.process.returncode == 0
    for i in range(3):
        push_round(f"after{i}")
    wait_until(lambda: all(a.status(x)["node"] in ("node-a", "node-c") for x in bots),
               FAILOVER_BOUND, "every bot on the staying nodes")

    def round_replies(bot: str) -> list[str]:
        return [t for t in map(_text, _replies(bots[bot])) if f"-{bot}" in t]

    wait_until(lambda: all(len(round_replies(bot)) >= len(pushed[bot]) for bot in bots),
               20, "every pushed event answered")
    for bot in bots:
        texts = round_replies(bot)
        assert len(texts) == len(set(texts)) == len(pushed[bot]), "one reply per event"

    # Every one of those events redelivered to whichever node now holds its bot (some were
    # answered by the node that left, some by the staying ones): none answered again.
    for bot, app in bots.items():
        for event, text in pushed[bot]:
            assert app.push(text, event_id=event, chat_id=f"oc_round_{bot}",
                            wait_ack=5)["ack"] is not None
        app.push("fresh after the handover", chat_id=f"oc_round_{bot}")
    wait_until(lambda: all(any("fresh after" in _text(m) for m in _replies(app))
                           for app in bots.values()), 15, "a fresh event answered per bot")
    for bot in bots:
        assert len(round_replies(bot)) == len(pushed[bot]), "a redelivery answered twice"

    assert cluster.server is not None
    with psycopg.connect(cluster.url) as conn:  # the earliest expiry, on the database's clock
        left = conn.execute("SELECT extract(epoch FROM min(expires_at) - now())"
                            " FROM bot_leases WHERE holder IS NOT NULL").fetchone()[0]
    lapse_at = time.monotonic() + float(left)  # a later renewal only moves it later
    cluster.server.stop("immediate")
    wait_until(lambda: all(app.info()["connections"] == 0 for app in bots.values()),
               max(lapse_at - time.monotonic(), 0.1), "workers stopped before any lease lapsed")
    assert time.monotonic() < lapse_at
    assert a.request("GET", "/readyz").status_code == 503
    assert c.request("GET", "/readyz").status_code == 503

    for node in cluster.nodes.values():  # the URL's password never reaches a file
        for path in node.data_dir.rglob("*.log*"):
            assert cluster.server.password not in path.read_text(errors="replace"), path
        assert cluster.server.password not in (node.data_dir / "serve.out").read_text()


def _published(url: str, bot_id: str, event_id: str) -> bool:
    """Whether the holder has written the event's dedup key where every node reads it."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT 1 FROM answered_events WHERE bot_id = %s AND event_id = %s",
                            (bot_id, event_id)).fetchone() is not None


def _replies(app: SimApp) -> list[dict[str, Any]]:
    """The bot's replies to pushed events (not the API sends made earlier)."""
    return [m for m in app.sent() if "hello via" not in str(m.get("content"))]


def _text(message: dict[str, Any]) -> str:
    return str(message.get("content"))
