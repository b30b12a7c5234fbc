"""The echo handler: reply with the text that was received."""

from shared.results import Text
from worker.content import Message, neutralise_at_all
from worker.handlers.base import Answer, Handler


class EchoHandler(Handler):
    """Replies with the message text; non-text messages and other events get no reply.

    The text is the user's, so an `<at user_id="all">` in it is neutralised.
    """

    async def handle(self, message: Message) -> Answer:
        if not message.is_message or not message.text:
            return []
        return [Text(text=neutralise_at_all(message.text))]
