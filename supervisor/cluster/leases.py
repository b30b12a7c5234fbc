"""The lease statements: one small SQL statement per verb, all on the database's clock.

A lease row says which node (`holder`) runs a bot's worker until `expires_at`.
`fence` grows on every acquisition, so a later holder always carries a larger
number than any earlier one. Acquisition only takes a row that is free
(holder NULL) or lapsed (expires_at <= now()); two nodes racing for one row
serialise on its row lock and the loser's WHERE no longer matches. Renewal is
ONE statement per node per round, whatever the number of bots: it also writes
the node's heartbeat.
"""

from dataclasses import dataclass

import psycopg

from store.postgres.schema import CHANNEL
from store.sqlite.bots import DESIRED_SQL


@dataclass(frozen=True)
class LeaseView:
    """One bot as every node sees it in a planning round."""

    bot_id: str
    desired: bool
    holder: str | None
    """The holder while its lease is live; None when free or lapsed."""
    fence: int
    state: str | None
    """The API state the holder last published."""
    updated: float
    """The bot row's `updated` (epoch s): a change the holder must apply."""
    lapses_in: float | None = None
    """Seconds until the live lease lapses, on the database's clock when read; None: free."""


@dataclass(frozen=True)
class NodeView:
    id: str
    address: str
    draining: bool


_RENEW = """
WITH beat AS (
    INSERT INTO nodes (id, address, heartbeat_at, draining)
    VALUES (%(node)s, %(address)s, now(), %(draining)s)
    ON CONFLICT (id) DO UPDATE
        SET address = excluded.address, heartbeat_at = now(), draining = excluded.draining
)
UPDATE bot_leases SET expires_at = now() + %(ttl)s * interval '1 second'
WHERE holder = %(node)s AND expires_at > now()
RETURNING bot_id, fence
"""

_VIEW = f"""
SELECT b.id, ({DESIRED_SQL}),
       CASE WHEN l.expires_at > now() THEN l.holder END,
       coalesce(l.fence, 0), CASE WHEN l.expires_at > now() THEN l.state END, b.updated,
       CASE WHEN l.expires_at > now() THEN extract(epoch FROM l.expires_at - now()) END
FROM bots b LEFT JOIN bot_leases l ON l.bot_id = b.id
ORDER BY b.created
"""

_NODES = """
SELECT id, address, draining FROM nodes
WHERE heartbeat_at > now() - %(ttl)s * interval '1 second' ORDER BY id
"""

_ACQUIRE = """
INSERT INTO bot_leases (bot_id, holder, fence, expires_at)
SELECT u.bot_id, %(node)s, 1, now() + %(ttl)s * interval '1 second'
FROM unnest(%(ids)s::text[]) AS u(bot_id)
WHERE EXISTS (SELECT 1 FROM bots WHERE bots.id = u.bot_id)
ON CONFLICT (bot_id) DO UPDATE
    SET holder = excluded.holder, fence = bot_leases.fence + 1,
        expires_at = excluded.expires_at, state = NULL
    WHERE bot_leases.holder IS NULL OR bot_leases.expires_at <= now()
RETURNING bot_id, fence
"""

_RELEASE = f"""
WITH freed AS (
    UPDATE bot_leases SET holder = NULL, expires_at = now(), state = NULL
    WHERE bot_id = ANY(%(ids)s::text[]) AND holder = %(node)s
    RETURNING bot_id
)
SELECT bot_id, pg_notify('{CHANNEL}', 'lease') FROM freed
"""

_PUBLISH = """
UPDATE bot_leases l SET state = s.state
FROM unnest(%(ids)s::text[], %(states)s::text[]) AS s(bot_id, state)
WHERE l.bot_id = s.bot_id AND l.holder = %(node)s AND l.expires_at > now()
"""

_HOLDER = f"""
SELECT l.holder, n.address, ({DESIRED_SQL})
FROM bots b
LEFT JOIN bot_leases l ON l.bot_id = b.id AND l.expires_at > now()
LEFT JOIN nodes n ON n.id = l.holder
WHERE b.id = %(bot)s
"""

_RECORD_ANSWERS = """
INSERT INTO answered_events (bot_id, event_id, message_id)
SELECT * FROM unnest(%(bots)s::text[], %(events)s::text[], %(messages)s::text[])
ON CONFLICT (bot_id, event_id) DO NOTHING
"""

_ANSWERS_OF = """
SELECT event_id, message_id FROM answered_events
WHERE bot_id = %(bot)s AND answered_at > now() - %(window)s * interval '1 second'
"""

_PRUNE_ANSWERS = """
DELETE FROM answered_events WHERE answered_at <= now() - %(window)s * interval '1 second'
"""

_LEAVE = f"""
WITH gone AS (DELETE FROM nodes WHERE id = %(node)s)
SELECT pg_notify('{CHANNEL}', 'lease')
"""


class LeaseStore:
    """The lease verbs of one node over one async connection (autocommit).

    Every method raises psycopg.Error when the database fails; the caller
    (ClusterNode) decides what a failure means, by its own monotonic deadline.
    """

    def __init__(self, conn: psycopg.AsyncConnection, node_id: str) -> None:
        self.conn = conn
        self.node_id = node_id

    async def renew(self, address: str, ttl: float, draining: bool = False) -> dict[str, int]:
        """Heartbeat and extend every live lease this node holds: {bot id: fence} still held."""
        params = {"node": self.node_id, "address": address, "draining": draining, "ttl": ttl}
        cursor = await self.conn.execute(_RENEW, params)
        return {bot_id: fence for bot_id, fence in await cursor.fetchall()}

    async def view(self) -> list[LeaseView]:
        """Every bot with its wish and its live lease, oldest bot first."""
        cursor = await self.conn.execute(_VIEW)
        return [LeaseView(row[0], bool(row[1]), row[2], int(row[3]), row[4], float(row[5]),
                          None if row[6] is None else float(row[6]))
                for row in await cursor.fetchall()]

    async def nodes(self, ttl: float) -> list[NodeView]:
        """The nodes whose heartbeat is younger than `ttl` seconds, by id."""
        cursor = await self.conn.execute(_NODES, {"ttl": ttl})
        return [NodeView(row[0], row[1], bool(row[2])) for row in await cursor.fetchall()]

    async def acquire(self, bot_ids: list[str], ttl: float) -> dict[str, int]:
        """Take the free or lapsed leases among `bot_ids`: {bot id: new fence} of those won."""
        if not bot_ids:
            return {}
        params = {"node": self.node_id, "ids": bot_ids, "ttl": ttl}
        cursor = await self.conn.execute(_ACQUIRE, params)
        return {bot_id: fence for bot_id, fence in await cursor.fetchall()}

    async def release(self, bot_ids: list[str]) -> list[str]:
        """Give up these leases now (and tell the other nodes); returns those released."""
        if not bot_ids:
            return []
        cursor = await self.conn.execute(_RELEASE, {"node": self.node_id, "ids": bot_ids})
        return [row[0] for row in await cursor.fetchall()]

    async def publish(self, states: dict[str, str]) -> None:
        """Record the API state of held bots, one statement for all, for the other nodes."""
        if states:
            ids, values = list(states), list(states.values())
            params = {"node": self.node_id, "ids": ids, "states": values}
            await self.conn.execute(_PUBLISH, params)

    async def holder_of(self, bot_id: str) -> tuple[str | None, str | None, bool] | None:
        """(live holder, its API address, wanted) of one bot, or None when no such bot."""
        cursor = await self.conn.execute(_HOLDER, {"bot": bot_id})
        row = await cursor.fetchone()
        return (row[0], row[1], bool(row[2])) if row else None

    async def record_answers(self, rows: list[tuple[str, str, str]]) -> None:
        """Publish answered events, (bot id, event id, message id or "") rows, in one
        statement; rows already known are left as they are."""
        if rows:
            bots, events, messages = (list(column) for column in zip(*rows, strict=True))
            await self.conn.execute(_RECORD_ANSWERS,
                                    {"bots": bots, "events": events, "messages": messages})

    async def answers_of(self, bot_id: str, window: float) -> list[tuple[str, str]]:
        """(event id, message id or "") of the bot's events answered in the last `window` s."""
        cursor = await self.conn.execute(_ANSWERS_OF, {"bot": bot_id, "window": window})
        return [(row[0], row[1]) for row in await cursor.fetchall()]

    async def prune_answers(self, window: float) -> int:
        """Forget answered events older than `window` seconds; returns how many."""
        cursor = await self.conn.execute(_PRUNE_ANSWERS, {"window": window})
        return cursor.rowcount

    async def leave(self) -> None:
        """Remove this node's row: the others stop counting it at once."""
        await self.conn.execute(_LEAVE, {"node": self.node_id})
