"""The event path of one bot: spool, consumer, handler, replies (interface stub).

The connection side (worker/main.py) depends only on this surface; the event
path fills it in. `accept` runs inside the SDK callback, so it must stay fast:
one small SQLite transaction, no logging of payloads, no JSON re-marshal.
"""

from dataclasses import dataclass

from shared.botconfig import BotConfig
from shared.paths import DataPaths


@dataclass
class Counters:
    events_received: int = 0
    replies_sent: int = 0
    pending: int = 0
    dead_letters: int = 0
    last_event_at: float | None = None


class SpoolingEventHandler:
    """Duck-types the SDK's EventDispatcherHandler for ws.Client.

    ws.Client calls only `_do_without_validation(payload)`: returning None
    makes the SDK ACK with code 200, raising makes it ACK with code 500.
    """

    def __init__(self, pipeline: "EventPipeline") -> None:
        self._pipeline = pipeline

    def _do_without_validation(self, payload: bytes) -> None:
        self._pipeline.accept(payload)


class EventPipeline:
    def __init__(self, bot: BotConfig, paths: DataPaths) -> None:
        self.bot = bot
        self.paths = paths
        self.counters = Counters()

    def sdk_event_handler(self) -> SpoolingEventHandler:
        return SpoolingEventHandler(self)

    def accept(self, payload: bytes) -> None:
        """Commit the raw event to the spool (dedup by event_id) before the ACK."""
        self.counters.events_received += 1

    async def run(self) -> None:
        """Consume spooled events until cancelled."""

    async def handle_webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        """Verify, decrypt and spool a webhook push: (status, body, content type)."""
        return 501, b'{"msg":"not implemented"}', "application/json"

    async def send(
        self, receive_id: str, receive_id_type: str, text: str, uuid: str | None
    ) -> tuple[bool, str | None, int | None, str | None]:
        """Send a message: (ok, message_id, code, error)."""
        return False, None, None, "not implemented"

    async def retry_dead_letter(self, event_id: str) -> tuple[bool, str | None]:
        """Queue a dead letter again: (ok, error)."""
        return False, "not implemented"

    async def close(self) -> None:
        """Flush and close the spool."""
