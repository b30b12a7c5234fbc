"""The consumer's in-memory schedule: per-chat order, one running head per chat, retries."""

from worker.schedule import Schedule


def test_one_head_per_chat_in_arrival_order() -> None:
    schedule = Schedule()
    for chat, event in [("A", "a1"), ("B", "b1"), ("A", "a2")]:
        schedule.add(chat, event)
    assert schedule.take(0.0) == ("A", "a1")
    assert schedule.take(0.0) == ("B", "b1")
    assert schedule.take(0.0) is None, "a2 waits for a1"
    schedule.done("A")
    assert schedule.take(0.0) == ("A", "a2")
    schedule.done("A")
    schedule.done("B")
    assert schedule.take(0.0) is None


def test_a_retry_holds_its_chat_until_due() -> None:
    schedule = Schedule()
    schedule.add("A", "a1")
    schedule.add("A", "a2")
    schedule.add("B", "b1")
    assert schedule.take(0.0) == ("A", "a1")
    schedule.retry("A", due=100.0)
    assert schedule.next_due() == 100.0
    assert schedule.take(50.0) == ("B", "b1")
    assert schedule.take(50.0) is None
    assert schedule.take(100.0) == ("A", "a1"), "the same head again, a2 still behind it"


def test_events_loaded_with_a_future_retry_wait_for_it() -> None:
    schedule = Schedule()
    schedule.add("A", "a1", due=30.0)
    schedule.add("A", "a2")
    assert schedule.take(10.0) is None
    assert schedule.take(30.0) == ("A", "a1")
