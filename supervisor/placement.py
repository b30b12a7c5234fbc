"""Where a bot may run: the supervisor's one question to cluster mode.

The supervisor runs a bot's worker only while the bot is wanted (the user's
wish in the store) AND `placement.may_run(bot_id)`. On one host (SingleNode)
the answer is always yes; in cluster mode (supervisor.cluster.node.ClusterNode)
it is yes only while this node holds the bot's lease.
"""

import socket
from typing import Protocol


def node_host() -> str:
    """This machine's name as other nodes resolve it (a pod's name in a StatefulSet)."""
    return socket.gethostname() or "127.0.0.1"


def default_node_id() -> str:
    """The hostname: stable per machine, and per pod in a Kubernetes StatefulSet."""
    return socket.gethostname() or "larkfleet"


AnswerKeys = list[tuple[str, str]]
"""(event id, IM message id or "") of answered events: what dedup across nodes keys on."""


class Placement(Protocol):
    node_id: str
    shares_answers: bool
    """Whether workers report answered events (`answered`) for the other nodes' dedup."""
    lapses: bool
    """Whether `may_run` can turn False by time alone (a lease deadline passing), so the
    supervisor asks it again every second even when nothing happened."""

    def may_run(self, bot_id: str) -> bool:
        """Whether this node may run the bot's worker now."""

    def holder(self, bot_id: str) -> str | None:
        """The node that holds the bot (None: none, or single-host mode)."""

    def published_state(self, bot_id: str) -> str | None:
        """The API state the holder last published (cluster mode), else None."""

    def address_of(self, node_id: str) -> str | None:
        """The internal API address a live node published (cluster mode), else None."""

    async def locate(self, bot_id: str) -> str | None:
        """Fresh from the database: the live holder's API address when another node holds
        the bot (waiting briefly for a wanted bot no node holds yet), else None."""

    def healthy(self) -> bool:
        """Whether this node may keep running workers (cluster mode: renewals in time)."""

    async def wait_released(self, bot_id: str, timeout: float) -> None:
        """Return once no node holds the bot, or after `timeout` seconds."""

    def answered(self, bot_id: str, keys: AnswerKeys) -> None:
        """A worker here answered these events: publish them for the other nodes."""

    async def answered_elsewhere(self, bot_id: str) -> AnswerKeys:
        """Before the first start after this node took the bot: the events other nodes
        answered within the platform's redelivery window (cluster mode), else []."""


class SingleNode:
    """One host: every bot may run here; nothing to wait for."""

    shares_answers = False
    lapses = False

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def may_run(self, bot_id: str) -> bool:
        return True

    def holder(self, bot_id: str) -> str | None:
        return None

    def published_state(self, bot_id: str) -> str | None:
        return None

    def address_of(self, node_id: str) -> str | None:
        return None

    async def locate(self, bot_id: str) -> str | None:
        return None

    def healthy(self) -> bool:
        return True

    async def wait_released(self, bot_id: str, timeout: float) -> None:
        return None

    def answered(self, bot_id: str, keys: AnswerKeys) -> None:
        return None

    async def answered_elsewhere(self, bot_id: str) -> AnswerKeys:
        return []
