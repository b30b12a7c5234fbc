"""Outbound pacing (worker/pacing.py, shared/ratelimits.py): pure policy on a fake clock,
plus the reset header honoured against the simulator."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from shared.ratelimits import Limit, SlidingWindow
from tests.eventkit import bot_config, event, pipeline_for, running, sent_until
from worker.pacing import Pacer


def test_window_counts_any_second_not_a_refilled_bucket() -> None:
    window = SlidingWindow(Limit(5, 1.0))
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        assert window.wait_s(t) == 0
        window.record(t)
    assert math.isclose(window.wait_s(0.5), 0.5), "the 6th waits for the 1st to leave"
    assert window.wait_s(1.0) == 0
    window.record(1.0)
    assert math.isclose(window.wait_s(1.05), 0.05)


def test_a_call_in_flight_holds_its_place_until_settled() -> None:
    window = SlidingWindow(Limit(1, 1.0))
    key = window.reserve()
    assert window.wait_s(100.0) == math.inf, "unknown end: nobody may pass"
    window.settle(key, 100.0)
    assert math.isclose(window.wait_s(100.2), 0.8), "counted from when the call ended"
    assert window.idle(101.0)


def test_a_chat_is_served_in_arrival_order_within_its_limit() -> None:
    async def scenario() -> list[tuple[str, float]]:
        pacer = Pacer(chat_limit=Limit(2, 0.2), app_limits=(Limit(100, 1.0),))
        started = time.monotonic()
        done: list[tuple[str, float]] = []

        async def send(name: str, chat: str) -> None:
            async with pacer.turn(chat) as turn:
                admission = await turn.admit()
                await asyncio.sleep(0.01)
                admission.done()
                done.append((name, time.monotonic() - started))

        await asyncio.gather(*(send(f"a{i}", "a") for i in range(5)), send("b0", "b"))
        return done

    done = asyncio.run(scenario())
    order = [name for name, _ in done if name.startswith("a")]
    assert order == ["a0", "a1", "a2", "a3", "a4"]
    at = dict(done)
    assert at["a2"] >= 0.2 and at["a4"] >= 0.4, at
    assert at["b0"] < 0.1, "another chat is not held back"


def test_a_refusal_holds_the_app_for_the_reset_time() -> None:
    async def scenario() -> float:
        pacer = Pacer()
        async with pacer.turn("c") as turn:
            (await turn.admit()).done()
            turn.hold_app(0.3)
        started = time.monotonic()
        async with pacer.turn("other") as turn:
            (await turn.admit()).done()
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.28


def test_the_reset_header_is_waited_and_the_send_retried_in_place(
    sim_app, tmp_path: Path
) -> None:
    app = sim_app()
    app.faults(im_errors={"count": 1, "code": 99991400, "status": 429, "reset": 1})

    async def scenario() -> float:
        async with running(pipeline_for(bot_config(app), tmp_path)) as pipeline:
            started = time.monotonic()
            pipeline.accept(event("once", event_id="ev-429"))
            [reply] = await sent_until(app, 1, timeout=10)
            assert reply["text"] == "once"
            assert pipeline.counters.counts.events_failed == 0, "retried in place, not as a failure"
            return time.monotonic() - started

    assert asyncio.run(scenario()) >= 1.0


def test_a_chat_refusal_holds_that_chat_only_and_counts_the_wait() -> None:
    async def scenario() -> tuple[float, float, float]:
        pacer = Pacer()
        assert pacer.waited_s == 0.0
        async with pacer.turn("refused") as turn:
            (await turn.admit()).done()
            turn.hold_chat(0.3)
            turn.hold_chat(0.05)  # a shorter hold never shortens the one in force
        started = time.monotonic()
        async with pacer.turn("other") as turn:
            (await turn.admit()).done()
        other = time.monotonic() - started
        async with pacer.turn("refused") as turn:
            (await turn.admit()).done()
        return other, time.monotonic() - started, pacer.waited_s

    other, refused, waited = asyncio.run(scenario())
    assert other < 0.2, "another chat is not held"
    assert refused >= 0.28
    assert 0.2 <= waited <= refused + 0.05, "the wait is counted once"


def test_a_hold_is_capped_at_a_minute() -> None:
    from worker.pacing import MAX_HOLD_S

    now = [1000.0]
    pacer = Pacer(clock=lambda: now[0])

    async def scenario() -> tuple[float, float]:
        async with pacer.turn("c") as turn:
            turn.hold_chat(3600)
            turn.hold_app(3600)
        chat = pacer._chats["c"]
        return chat.held_until, pacer._app_held_until

    assert asyncio.run(scenario()) == (1000.0 + MAX_HOLD_S, 1000.0 + MAX_HOLD_S) == (1060.0,) * 2
