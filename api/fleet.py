"""What the API needs from the supervisor: the only door from HTTP to processes.

The Supervisor implements this protocol; the API never touches a process, a
socket or a worker, so it can be tested against any object with these methods.
"""

from typing import Protocol

from shared.changes import DEFAULT_QUEUE, Subscription
from shared.messages import RetryResult, SendResult
from shared.results import Reply
from shared.status import BotMetrics, BotStatus


class Fleet(Protocol):
    node_id: str
    """This node's id (the hostname unless set): in /readyz and every bot status."""

    async def holder_address(self, bot_id: str) -> str | None:
        """Cluster mode: the API address of the other node holding the bot, read fresh
        from the database (waiting a moment for a wanted bot that no node holds yet);
        None when it is held here, by no node, or there is no cluster (then this node
        answers)."""

    def ready(self) -> bool:
        """Registry open, zygote ready and (cluster mode) leases renewed: what /readyz reports."""

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """Change records (shared.changes.Change) published from now on, for every bot.

        Not scoped: a route serving them filters by `change.owner`. Close the
        subscription when the client leaves; iteration ends at shutdown. A
        listener `maxsize` records behind loses the oldest (`dropped` counts them).
        """

    async def bot_added(self, bot_id: str) -> None:
        """A bot was created. Webhook-mode bots get a worker at once."""

    async def connect(self, bot_id: str) -> None:
        """Persist the wish to be connected and start (or restart) the worker."""

    async def disconnect(self, bot_id: str) -> None:
        """Persist the wish to be disconnected; returns once the worker is gone."""

    async def bot_changed(self, bot_id: str) -> None:
        """The bot's config changed: a running worker is restarted with the new one."""

    async def bot_removed(self, bot_id: str) -> None:
        """Called before the registry row is deleted: stops the worker, forgets the bot."""

    def status(self, bot_id: str) -> BotStatus:
        """The live status of one bot (state, pid, restarts, counters...)."""

    def metrics(self, bot_id: str) -> BotMetrics:
        """Event counters and latency histograms summed over every worker incarnation."""

    async def deliver_webhook(
        self, bot_id: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        """Hand a webhook push to the bot's worker: (HTTP status, body, content type)."""

    async def send_message(
        self, bot_id: str, receive_id: str, receive_id_type: str, replies: list[Reply] | str,
        uuid: str | None,
    ) -> SendResult:
        """Send outbound messages (handler result shapes, or one text) through the bot's worker.

        When no worker takes it, the result has ok=False and incarnation NO_WORKER: the
        API answers 409 then; 504 when it is `timed_out` (the worker did not answer in
        time, so it may still send); 502 for a failure a worker reported.
        """

    async def retry_dead_letter(self, bot_id: str, event_id: str) -> RetryResult:
        """Ask the bot's worker to queue a dead-lettered event again (NO_WORKER: none took it)."""
