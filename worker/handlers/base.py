"""What every handler offers the consumer and the card-action path."""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from shared.results import CardActionResult, Reply
from worker.cardaction import CardAction
from worker.content import Message

Answer = list[Reply] | AsyncIterator[str]
"""What `handle` gives: the replies to send in order ([] = none), or a text stream
that is shown as one card updated while it is written (worker/streaming.py)."""


class Handler(ABC):
    """Turns one message into replies (shared/results.py) or a text stream."""

    @abstractmethod
    async def handle(self, message: Message) -> Answer:
        """Answer a message; raise to have the event retried and, in the end, dead-lettered."""

    async def card_action(self, action: CardAction) -> CardActionResult | None:
        """Answer a card click (toast and/or new card); None = an empty answer (the default)."""
        return None

    def history(self, message: Message, answer: str | None) -> list[tuple[str, str]]:
        """Chat history turns to store once the reply is sent (role, content); none by default.

        `answer` is the text the user was shown (text replies, or a streamed card's text).
        """
        return []

    def close(self) -> None:
        """Release what the handler holds (threads); nothing by default."""
        return None
