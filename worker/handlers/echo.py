"""The echo handler: reply with the text that was received."""

from worker.content import Message
from worker.handlers.base import Handler


class EchoHandler(Handler):
    """Replies with the message text; non-text messages get no reply."""

    async def handle(self, message: Message) -> str | None:
        return message.text or None
