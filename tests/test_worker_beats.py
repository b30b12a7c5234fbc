"""The worker's beat timer (worker/beats.py): often while working, rarely once idle, and
often again from the first poke."""

import asyncio

from worker.beats import BeatTimer


def test_beats_slow_down_when_idle_and_speed_up_on_work() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        beats: list[float] = []
        news = [True, False]  # the first beat reports something, then nothing
        stopped = asyncio.Event()

        def beat() -> bool | None:
            beats.append(loop.time())
            if len(beats) >= 5:
                stopped.set()
                return None
            return news.pop(0) if news else False

        timer = BeatTimer(beat, interval=0.02, idle_interval=60.0)
        timer.start()
        async with asyncio.timeout(5):
            while len(beats) < 2 or not timer.idle:
                await asyncio.sleep(0.005)
        assert len(beats) == 2, "after a beat with news, the next one within the interval"
        poked_at = loop.time()
        timer.poke()
        assert not timer.idle
        async with asyncio.timeout(5):
            while len(beats) < 3:
                await asyncio.sleep(0.005)
        assert beats[2] - poked_at < 1.0, "a poke brings the idle beat forward"
        assert timer.idle, "nothing new and no poke since: idle again"
        timer.poke()
        timer.poke()  # a second poke while active moves nothing
        async with asyncio.timeout(5):
            while len(beats) < 4:
                await asyncio.sleep(0.005)
        assert not timer.idle, "a poke since the last beat counts as work: one more fast beat"
        async with asyncio.timeout(5):
            await stopped.wait()
        timer.cancel()

    asyncio.run(main())
