"""The pipeline in-process against the simulator: replies, dedup, retries, dead letters."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.botconfig import PythonHandler
from shared.idempotency import send_uuid
from shared.results import Text
from tests.eventkit import FAST, bot_config, event, pipeline_for, running, sent_until, until
from worker.consumer import ConsumerSettings
from worker.spool import Spool

FLAKY_CALLS: dict[str, int] = {}
HANDLER_CALLS: dict[str, int] = {}
GATES: dict[str, asyncio.Event] = {}


def count_calls(message) -> str:
    """A python handler that counts its calls per event."""
    HANDLER_CALLS[message.event_id] = HANDLER_CALLS.get(message.event_id, 0) + 1
    return f"counted: {message.text}"


async def wait_for_gate(message) -> str:
    """An async python handler that holds its chat until the test opens the chat's gate."""
    gate = GATES.get(message.chat_id)
    if gate is not None:
        await gate.wait()
    return f"done: {message.text}"


def fail_twice(message) -> str:
    """A python handler that fails on its first two calls per event."""
    FLAKY_CALLS[message.event_id] = FLAKY_CALLS.get(message.event_id, 0) + 1
    if FLAKY_CALLS[message.event_id] <= 2:
        raise RuntimeError("handler exploded")
    return f"third time: {message.text}"


def test_echo_reply_targets_the_message_with_a_stable_uuid(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pipeline.accept(event("ping", event_id="ev-1", message_id="om_target"))
            [reply] = await sent_until(app, 1)
            assert (reply["kind"], reply["replyTo"]) == ("reply", "om_target")
            assert reply["text"] == "ping"
            assert reply["uuid"] == send_uuid("om_target") and len(reply["uuid"]) <= 50
            counters = pipeline.counters.counts
            await until(lambda: counters.replies_sent == 1 and not counters.pending)
            assert pipeline.counters.counts.events_received == 1
            assert pipeline.counters.last_event_epoch is not None

    asyncio.run(scenario())
    assert send_uuid("om_target") == send_uuid("om_target") != send_uuid("om_other")


def test_same_event_three_times_gives_one_reply(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            payload = event("once", event_id="dup")
            for _ in range(3):
                pipeline.accept(payload)
            await sent_until(app, 1)
            await until(lambda: not pipeline.counters.counts.pending)
            counters = pipeline.counters
            assert (counters.counts.events_received, counters.duplicates) == (1, 2)
        # A redelivery after restart is still recognised.
        restarted = pipeline_for(bot_config(app, id=pipeline.bot.id), tmp_path)
        restarted.accept(payload)
        assert restarted.counters.duplicates == 1
        await restarted.close()

    asyncio.run(scenario())
    assert len(app.sent()) == 1


def test_replies_keep_order_within_a_chat(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            for i in range(10):
                pipeline.accept(event(f"a{i}", chat_id="oc_a"))
                pipeline.accept(event(f"b{i}", chat_id="oc_b"))
            sent = await sent_until(app, 20)
        for chat in "ab":
            texts = [s["text"] for s in sent if s["text"].startswith(chat)]
            assert texts == [f"{chat}{i}" for i in range(10)]

    asyncio.run(scenario())


def test_unfinished_rows_are_processed_after_restart(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    bot = bot_config(app)

    async def scenario() -> None:
        first = pipeline_for(bot, tmp_path)
        first.accept(event("left behind", event_id="ev-restart", message_id="om_restart"))
        await first.close()
        async with running(pipeline_for(bot, tmp_path)) as second:
            assert second.counters.counts.pending == 1
            [reply] = await sent_until(app, 1)
            assert reply["uuid"] == send_uuid("om_restart")

    asyncio.run(scenario())


def test_platform_errors_retry_then_dead_letter_then_manual_retry(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    app.faults(im_errors={"count": 3, "code": 2200, "status": 500, "msg": "internal error"})

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pipeline.accept(event("later", event_id="ev-dead"))
            await until(lambda: pipeline.counters.counts.dead_letters == 1, what="dead letter")
            assert pipeline.counters.counts.pending == 0
            [dead] = pipeline.dead_letters()
            assert dead.event_id == "ev-dead" and dead.attempts == 3
            assert "2200" in dead.last_error
            assert await pipeline.retry_dead_letter("ev-dead") == (True, None)
            assert (await pipeline.retry_dead_letter("nope"))[0] is False
            [reply] = await sent_until(app, 1)
            assert reply["text"] == "later"
            counters = pipeline.counters.counts
            await until(lambda: counters.dead_letters == 0 and not counters.pending)

    asyncio.run(scenario())


def test_raising_handler_is_retried_and_never_kills_the_worker(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    handler = PythonHandler(target="tests.test_event_pipeline:fail_twice")
    settings_bot = bot_config(app, handler=handler)

    async def scenario() -> None:
        async with running(pipeline_for(settings_bot, tmp_path)) as pipeline:
            pipeline.accept(event("x", event_id="ev-flaky"))
            pipeline.accept(event("y", event_id="ev-other", chat_id="oc_other"))
            sent = await sent_until(app, 2)
            assert sorted(s["text"] for s in sent) == ["third time: x", "third time: y"]
            assert pipeline.counters.counts.dead_letters == 0

    asyncio.run(scenario())


def test_undecodable_content_is_dead_lettered_at_once(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pipeline.accept(event(content="{not json", event_id="ev-bad"))
            pipeline.accept(event("fine", event_id="ev-fine"))
            await sent_until(app, 1)
            await until(lambda: pipeline.counters.counts.dead_letters == 1)
            assert pipeline.dead_letters()[0].attempts == 1

    asyncio.run(scenario())


def test_group_without_mention_ignored_with_mention_answered(sim_app, tmp_path: Path) -> None:
    app = sim_app(botOpenId="ou_bot")
    mention = [{"key": "@_user_1", "name": "Bot", "id": {"open_id": "ou_bot"}}]

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pipeline.accept(event("chatter", chat_type="group", chat_id="oc_g"))
            pipeline.accept(event("@_user_1 hello", chat_type="group", chat_id="oc_g",
                                  mentions=mention))
            pipeline.accept(event(message_type="image", content='{"image_key":"k"}'))
            [reply] = await sent_until(app, 1)
            assert reply["text"] == "hello"
            await until(lambda: not pipeline.counters.counts.pending)

    asyncio.run(scenario())
    assert len(app.sent()) == 1


def test_send_creates_a_message(sim_app, tmp_path: Path) -> None:
    app = sim_app()

    async def scenario() -> None:
        pipeline = pipeline_for(bot_config(app), tmp_path)
        hi = [Text(text="hi")]
        ok, message_ids, code, error = await pipeline.send("ou_1", "open_id", hi, "u-1")
        assert (ok, code, error) == (True, 0, None) and len(message_ids) == 1
        again = await pipeline.send("ou_1", "open_id", hi, "u-1")
        assert again[1] == message_ids
        bad = await pipeline.send("", "open_id", hi, None)
        assert bad[0] is False and bad[2] and bad[3]
        await pipeline.close()

    asyncio.run(scenario())
    [first, _] = app.sent()
    assert (first["kind"], first["receiveId"], json.loads(first["content"])) == (
        "create", "ou_1", {"text": "hi"},
    )


def test_accept_of_a_thousand_events_is_fast(sim_app, tmp_path: Path) -> None:
    app = sim_app()
    payloads = [event(f"m{i}", chat_id=f"oc_{i % 50}") for i in range(1000)]
    pipeline = pipeline_for(bot_config(app), tmp_path)
    started = time.perf_counter()
    for payload in payloads:
        pipeline.accept(payload)
    elapsed = time.perf_counter() - started
    assert pipeline.counters.counts.pending == 1000
    assert elapsed < 2.0, f"1000 accepts took {elapsed:.3f} s"
    asyncio.run(pipeline.close())


def test_the_spool_prune_runs_off_the_loop_that_acks(tmp_path: Path) -> None:
    """The prune may take long on a big spool: it must never run on the event loop."""

    async def scenario() -> None:
        pipeline = pipeline_for(bot_config(), tmp_path,
                                replace(FAST, first_prune_after_s=0.0))
        spool = pipeline._consumer._spool
        ran_on: list[threading.Thread] = []
        prune = spool.prune

        def recording_prune(*args: Any, **kwargs: Any) -> int:
            ran_on.append(threading.current_thread())
            return prune(*args, **kwargs)

        spool.prune = recording_prune  # type: ignore[method-assign]
        task = asyncio.create_task(pipeline.run())
        try:
            await until(lambda: ran_on, what="the first prune")
            assert ran_on[0] is not threading.current_thread()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pipeline.close()

    asyncio.run(scenario())


def test_an_overdue_spool_is_pruned_at_start_and_a_new_one_later(tmp_path: Path) -> None:
    """A spool whose last prune is older than the interval (or from before the stamp) is
    pruned as its worker starts, so short-lived workers still prune; a new spool waits."""

    async def first_prune(data: Path, overdue: bool) -> bool:
        settings = replace(FAST, first_prune_after_s=3600.0)
        pipeline = pipeline_for(bot_config(), data, settings)
        spool = pipeline._consumer._spool
        if overdue:
            spool._conn.execute("UPDATE meta SET value = 0 WHERE key = 'pruned_at'")
        before = spool.pruned_at()
        task = asyncio.create_task(pipeline.run())
        try:
            if overdue:
                await until(lambda: spool.pruned_at() > before, what="the prune at start")
            return spool.pruned_at() > before
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pipeline.close()

    assert asyncio.run(first_prune(tmp_path / "old", overdue=True))
    assert time.time() - 5 < Spool(tmp_path / "new" / "spool.db").pruned_at() <= time.time()


def test_a_fleet_starting_together_spreads_its_first_prunes() -> None:
    """Workers started in the same second prune over a minute, not in that second."""
    settings = ConsumerSettings()
    delays = [settings.first_prune_delay() for _ in range(200)]
    assert all(30.0 <= d <= 90.0 for d in delays)
    assert max(delays) - min(delays) > 30.0


def test_the_consumer_stops_when_cancelled_as_it_is_woken(tmp_path: Path) -> None:
    """A cancel arriving with a wake must not be swallowed (3.11's wait_for could)."""

    async def scenario() -> None:
        pipeline = pipeline_for(bot_config(), tmp_path)
        try:
            for _ in range(200):
                task = asyncio.create_task(pipeline.run())
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                pipeline._consumer.wake()
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=2)
                assert done, "the consumer kept running after it was cancelled"
        finally:
            await pipeline.close()

    asyncio.run(scenario())


def test_a_failed_reply_is_retried_without_calling_the_handler_again(
    sim_app, tmp_path: Path
) -> None:
    """The handler's answer is kept with the event: a reply the platform refused once (5xx)
    is sent again, the handler is not asked again (it may not be idempotent)."""
    app = sim_app()
    app.faults(im_errors={"count": 1, "code": 2200, "status": 500, "msg": "internal error"})
    handler = PythonHandler(target="tests.test_event_pipeline:count_calls")

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app, handler=handler), tmp_path)) as pipeline:
            pipeline.accept(event("once", event_id="ev-reply-retry"))
            [reply] = await sent_until(app, 1)
            assert reply["text"] == "counted: once"
            counters = pipeline.counters.counts
            await until(lambda: counters.replies_sent == 1 and not counters.pending)
            assert counters.events_failed == 1, "the refused reply was a failed attempt"

    asyncio.run(scenario())
    assert HANDLER_CALLS["ev-reply-retry"] == 1


def test_a_rate_limited_reply_waits_the_platforms_reset(sim_app, tmp_path: Path) -> None:
    """99991400 with `x-ogw-ratelimit-reset: 1`: the same reply goes again, no sooner than
    the reset the platform named (a 5xx would be retried after 0.05 s here)."""
    app = sim_app()
    app.faults(im_errors={"count": 1, "code": 99991400, "status": 429, "reset": 1,
                          "msg": "request trigger frequency limit"})

    async def scenario() -> None:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            pushed_at = time.time()
            pipeline.accept(event("slow down", event_id="ev-rate"))
            [reply] = await sent_until(app, 1, timeout=10)
            assert reply["text"] == "slow down"
            assert reply["at"] - pushed_at >= 1.0, "the reset was waited for"
            await until(lambda: not pipeline.counters.counts.pending)
            assert pipeline.counters.counts.dead_letters == 0

    asyncio.run(scenario())
    assert len(app.sent()) == 1


def test_chats_are_handled_concurrently(sim_app, tmp_path: Path) -> None:
    """A handler stuck on one chat does not hold the next chat's event behind it."""
    app = sim_app()
    handler = PythonHandler(target="tests.test_event_pipeline:wait_for_gate")

    async def scenario() -> None:
        GATES["oc_stuck"] = gate = asyncio.Event()
        try:
            async with running(pipeline_for(bot_config(app, handler=handler),
                                            tmp_path)) as pipeline:
                pipeline.accept(event("first", chat_id="oc_stuck"))
                pipeline.accept(event("second", chat_id="oc_free"))
                [reply] = await sent_until(app, 1)
                assert reply["text"] == "done: second", "answered while oc_stuck waits"
                assert pipeline.counters.counts.pending == 1
                gate.set()
                sent = await sent_until(app, 2)
                assert sent[1]["text"] == "done: first"
        finally:
            GATES.clear()

    asyncio.run(scenario())


def test_an_idle_spool_is_not_polled_for_checkpoints(tmp_path: Path) -> None:
    """At rest the checkpoint task sleeps until a write (1,000 idle workers each polling
    once a second cost a wake-up each); a write is still checkpointed an interval later."""

    async def scenario() -> None:
        settings = replace(FAST, checkpoint_interval_s=0.05)
        pipeline = pipeline_for(bot_config(), tmp_path, settings)
        spool = pipeline._consumer._spool
        looks: list[float] = []
        written = spool.written_since_checkpoint

        def counting() -> bool:
            looks.append(time.monotonic())
            return written()

        spool.written_since_checkpoint = counting  # type: ignore[method-assign]
        async with running(pipeline):
            await asyncio.sleep(0.5)
            assert looks == [], "the idle spool was looked at ten times a second"
            pipeline.accept(event("hi"))
            await until(lambda: not written(), what="the write checkpointed")
            assert looks

    asyncio.run(scenario())
