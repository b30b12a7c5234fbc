"""The change feed: fan-out, bounded drop-oldest queues, and a clean end at shutdown."""

import asyncio

from shared.changes import Change, ChangeFeed, ChangeKind
from shared.states import ConnState


def change(n: int, bot_id: str = "bot_1") -> Change:
    return Change(
        bot_id=bot_id, owner="usr_1", kind=ChangeKind.STATE, from_state=None,
        to_state=ConnState.CONNECTING, phase="starting", why=f"step {n}", at_epoch=float(n),
    )


def test_every_subscriber_gets_every_record_in_order() -> None:
    async def main() -> None:
        feed = ChangeFeed()
        with feed.subscribe() as first, feed.subscribe() as second:
            for n in range(3):
                feed.publish(change(n))
            for sub in (first, second):
                whys = [(await sub.get(0.1)).why for _ in range(3)]
                assert whys == ["step 0", "step 1", "step 2"]
                assert await sub.get(0.01) is None
        assert feed.listeners() == 0

    asyncio.run(main())


def test_a_slow_listener_loses_the_oldest_and_never_blocks_the_publisher() -> None:
    async def main() -> None:
        feed = ChangeFeed()
        with feed.subscribe(maxsize=2) as slow, feed.subscribe(maxsize=100) as fast:
            for n in range(10):
                feed.publish(change(n))
            assert slow.dropped == 8 and slow.pending() == 2
            assert [(await slow.get(0)).why for _ in range(2)] == ["step 8", "step 9"]
            assert fast.dropped == 0 and fast.pending() == 10

    asyncio.run(main())


def test_closing_the_feed_ends_every_iteration() -> None:
    async def main() -> list[str]:
        feed = ChangeFeed()
        seen: list[str] = []

        async def listen() -> None:
            async with feed.subscribe() as sub:
                async for record in sub:
                    seen.append(record.why)

        task = asyncio.create_task(listen())
        await asyncio.sleep(0)
        feed.publish(change(1))
        feed.close()
        await asyncio.wait_for(task, 1)
        assert feed.subscribe().closed
        return seen

    assert asyncio.run(main()) == ["step 1"]
