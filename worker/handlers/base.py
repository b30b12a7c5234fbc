"""What every handler offers the consumer."""

from abc import ABC, abstractmethod

from worker.content import Message


class Handler(ABC):
    """Turns one message into reply text (or None: no reply)."""

    @abstractmethod
    async def handle(self, message: Message) -> str | None:
        """Answer a message; raise to have the event retried and, in the end, dead-lettered."""

    def history(self, message: Message, answer: str | None) -> list[tuple[str, str]]:
        """Chat history turns to store once the reply is sent (role, content); none by default."""
        return []

    def close(self) -> None:
        """Release what the handler holds (threads); nothing by default."""
        return None
