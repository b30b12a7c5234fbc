"""The baseline: one bot exactly as users run it today, one plain Python process with the
SDK's ws.Client. Run by path (`python bench/bare_bot.py APP_ID SECRET DOMAIN MODE`), so it
imports nothing of larkfleet. MODE `idle` ACKs and does nothing; `echo` replies through
lark.Client inside the handler, as the SDK's own examples do."""

import json
import sys

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    P2ImMessageReceiveV1,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)


def main() -> None:
    app_id, secret, domain, mode = sys.argv[1:5]
    api = (
        lark.Client.builder().app_id(app_id).app_secret(secret).domain(domain)
        .log_level(lark.LogLevel.WARNING).build()
    )

    def on_message(data: P2ImMessageReceiveV1) -> None:
        if mode != "echo":
            return
        message = data.event.message
        text = json.loads(message.content).get("text", "")
        body = ReplyMessageRequestBody.builder().content(json.dumps({"text": text}))
        request = ReplyMessageRequest.builder().message_id(message.message_id)
        api.im.v1.message.reply(request.request_body(body.msg_type("text").build()).build())

    handler = (
        lark.EventDispatcherHandler.builder("", "")
        .register_p2_im_message_receive_v1(on_message).build()
    )
    client = lark.ws.Client(app_id, secret, event_handler=handler, domain=domain,
                            log_level=lark.LogLevel.WARNING)
    client.start()


if __name__ == "__main__":
    main()
