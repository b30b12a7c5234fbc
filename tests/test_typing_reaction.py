"""The optional typing reaction: on the message while its answer is worked out, then gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.botconfig import BotOptions, PythonHandler
from tests.eventkit import bot_config, event, pipeline_for, running, sent_until, until


def slow(message) -> str:
    import time

    time.sleep(0.3)
    return "thought about it"


def test_typing_reaction_is_set_while_working_and_removed_after(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    bot = bot_config(app, handler=PythonHandler(target="tests.test_typing_reaction:slow"),
                     options=BotOptions(typing_reaction="Typing"))

    async def scenario() -> None:
        async with running(pipeline_for(bot, tmp_path)) as pipeline:
            pipeline.accept(event("hm", message_id="om_typing"))
            [reply] = await sent_until(app, 1)
            await until(lambda: not pipeline.counters.counts.pending, what="done")
        [reaction] = app.info()["reactions"]
        assert (reaction["messageId"], reaction["emojiType"]) == ("om_typing", "Typing")
        assert reaction["at"] < reply["at"] <= reaction["removedAt"]

    asyncio.run(scenario())


def test_no_reaction_unless_asked(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pipeline.accept(event("plain"))
            await sent_until(app, 1)

    asyncio.run(scenario())
    assert app.info()["reactions"] == []
