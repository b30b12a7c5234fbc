"""The echo handler: reply with the text that was received."""

from shared.results import Text
from worker.content import Message
from worker.handlers.base import Answer, Handler


class EchoHandler(Handler):
    """Replies with the message text; non-text messages get no reply."""

    async def handle(self, message: Message) -> Answer:
        return [Text(text=message.text)] if message.text else []
