"""Streamed cards in-process against the simulator: resume paths after a crash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from shared.botconfig import PythonHandler
from shared.idempotency import send_uuid
from tests.eventkit import bot_config, event, pipeline_for, running, until
from worker.replies import Messenger, Target
from worker.spool import Spool
from worker.streaming import stream_card

RUNS: list[str] = []


def must_not_stream(message):
    """A generator the retry must not run: its stream had already ended before the crash."""
    RUNS.append(message.event_id)
    yield "a second answer"


def test_a_retry_after_the_stream_ended_only_shows_the_stored_text(
    sim_app, tmp_path: Path
) -> None:
    """Crash after the stream ended but before the event was done: the same card gets the
    stored final text; the handler's stream is not run again and no second card is sent."""
    app = sim_app()
    bot = bot_config(app, handler=PythonHandler(target="tests.test_streaming:must_not_stream"))
    payload = event("q", event_id="ev-ended", message_id="om_q")

    async def scenario() -> None:
        messenger = Messenger(bot)
        try:
            first = await messenger.send(Target.reply("om_q", "oc_chat"), "interactive",
                                         json.dumps(stream_card("", final=False)),
                                         send_uuid("om_q", 0))
        finally:
            messenger.close()
        spool = Spool(tmp_path / "bots" / bot.id / "spool.db")
        spool.add("ev-ended", "oc_chat", "im.message.receive_v1", payload)
        spool.stream_started("ev-ended", first.message_id)
        spool.stream_finished("ev-ended", "the answer written before the crash")
        spool.close()
        async with running(pipeline_for(bot, tmp_path)) as pipeline:
            await until(lambda: pipeline.counters.counts.events_handled == 1, what="the event done")

    asyncio.run(scenario())
    [card] = app.sent()
    assert "the answer written before the crash" in card["content"]
    assert card["updates"] == 1 and RUNS == []
