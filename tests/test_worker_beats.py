"""The worker's beat timer (worker/beats.py): often while working, rarely once idle, and
at once on the first poke after going idle."""

import asyncio

from worker.beats import BeatTimer


def test_beats_slow_down_when_idle_and_come_at_once_on_work() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        beats: list[float] = []
        news = [True, False]  # the first beat reports something, then nothing

        def beat() -> bool | None:
            beats.append(loop.time())
            return news.pop(0) if news else False

        async def until(count: int) -> None:
            async with asyncio.timeout(5):
                while len(beats) < count:
                    await asyncio.sleep(0.001)

        timer = BeatTimer(beat, interval=0.02, idle_interval=60.0)
        timer.start()
        await until(2)
        assert timer.idle, "a beat with nothing new: the next one is the idle one"
        poked_at = loop.time()
        timer.poke()
        timer.poke()  # a second poke moves nothing
        assert not timer.idle
        await until(3)
        assert beats[2] - poked_at < 0.02, "the first poke after idling beats at once"
        assert not timer.idle, "the poke counts as work: one more beat within the interval"
        await until(4)
        assert beats[3] - beats[2] < 1.0 and timer.idle, "then nothing new: idle again"
        await asyncio.sleep(0.1)
        assert len(beats) == 4, "idle: no beat for the idle interval"
        timer.cancel()

    asyncio.run(main())
