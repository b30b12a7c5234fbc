"""Which leases a node takes and gives up in one round: pure policy, no I/O.

Every node computes the same fair shares from the same view: with D wanted
bots and N live (not draining) nodes, the node ranked r (by id) should hold
D // N bots, plus one when r < D % N. A node under its share takes free or
lapsed leases (in an order of its own, rendezvous-hashed on node and bot, so
racing nodes mostly reach for different bots and a bot tends to return to
the same node); a node over its share hands over its excess, at most
`max_moves` per round, so a join never reconnects everything at once. A bot
no longer wanted is released at once, and a draining node releases
everything (it is leaving: moving slowly would only keep bots down longer).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from supervisor.cluster.leases import LeaseView


@dataclass(frozen=True)
class Plan:
    acquire: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    share: int = 0
    """This node's fair share of the wanted bots this round."""


def fair_share(node_id: str, live_nodes: Iterable[str], wanted: int) -> int:
    """How many of `wanted` bots `node_id` should hold; 0 when it is not among the live."""
    ranked = sorted(set(live_nodes))
    if node_id not in ranked:
        return 0
    base, extra = divmod(wanted, len(ranked))
    return base + (1 if ranked.index(node_id) < extra else 0)


def _affinity(node_id: str, bot_id: str) -> bytes:
    return hashlib.blake2b(f"{node_id}/{bot_id}".encode(), digest_size=8).digest()


def plan(
    node_id: str,
    live_nodes: Iterable[str],
    bots: list[LeaseView],
    held: set[str],
    max_moves: int,
) -> Plan:
    """One round's moves for `node_id`.

    live_nodes: ids of the nodes that take bots (heartbeat fresh, not draining),
    this one included unless it is draining. bots: the view of every bot.
    held: bots this node holds and is not already releasing.
    """
    wanted = [b for b in bots if b.desired]
    share = fair_share(node_id, live_nodes, len(wanted))
    wanted_ids = {b.bot_id for b in wanted}
    release = sorted(b for b in held if b not in wanted_ids)
    mine = sorted((b for b in held if b in wanted_ids), key=lambda b: _affinity(node_id, b))
    if len(mine) > share:
        excess = len(mine) - share
        moves = excess if share == 0 else min(excess, max_moves)
        release += mine[len(mine) - moves:]  # the ones with the least affinity go first
        return Plan(release=release, share=share)
    free = [b.bot_id for b in wanted if b.holder is None]
    free.sort(key=lambda b: _affinity(node_id, b))
    return Plan(acquire=free[: share - len(mine)], release=release, share=share)
