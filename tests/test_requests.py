"""Requests to workers: answered by id, failed replies after the timeout, never a hang."""

import asyncio
import json

from shared.messages import (
    NO_WORKER,
    Deliver,
    DeliverResult,
    RetryDeadLetter,
    RetryResult,
    Send,
    SendResult,
    failed_reply,
)
from supervisor.requests import PendingRequests

SEND = Send(request_id="r1", receive_id="ou_1", receive_id_type="open_id", text="hi")


def test_the_reply_with_the_same_id_answers_the_caller() -> None:
    async def scenario() -> None:
        pending = PendingRequests(timeout=5)
        sent: list[Send] = []

        def send(request: Send) -> None:
            sent.append(request)
            pending.answer(SendResult(bot_id="b", incarnation=3, request_id="other", ok=True))
            pending.answer(SendResult(bot_id="b", incarnation=3, request_id="r1", ok=True,
                                      message_id="om_1"))

        reply = await pending.ask("b", send, SEND)
        assert sent == [SEND]
        assert isinstance(reply, SendResult) and reply.message_id == "om_1"

    asyncio.run(scenario())


def test_no_answer_gives_a_failed_reply_marked_no_worker() -> None:
    async def scenario() -> None:
        reply = await PendingRequests(timeout=0.05).ask("b", lambda _: None, SEND)
        assert isinstance(reply, SendResult)
        assert (reply.ok, reply.incarnation) == (False, NO_WORKER)
        assert "did not answer" in (reply.error or "")
        assert reply.timed_out, "the worker may still send it: the outcome is unknown"

    asyncio.run(scenario())


def test_failed_replies_keep_the_request_type_and_hide_errors_from_the_platform() -> None:
    deliver = failed_reply(Deliver(request_id="d", headers={}, body=b"{}"), "b", 2,
                           "Traceback: secret internals", 500)
    assert isinstance(deliver, DeliverResult) and deliver.status == 500
    assert json.loads(deliver.body) == {"msg": "Internal Server Error"}
    retry = failed_reply(RetryDeadLetter(request_id="x", event_id="e"), "b", 2, "boom", 500)
    assert isinstance(retry, RetryResult) and (retry.ok, retry.error) == (False, "boom")
    assert not retry.timed_out
    no_worker = failed_reply(SEND, "b", NO_WORKER, "no running worker", 503)
    assert isinstance(no_worker, SendResult) and not no_worker.timed_out
