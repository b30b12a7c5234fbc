"""The shared-memory liveness board, across real processes (a fork writes, we read)."""

import os
from pathlib import Path

import pytest

from shared.liveness_board import SLOTS, BeatWatch, LivenessBoard, SlotAllocator


def test_beats_of_another_process_are_seen_and_a_new_token_starts_fresh(tmp_path: Path) -> None:
    board = LivenessBoard(tmp_path / "board", create=True)
    watch = BeatWatch(token=7, now_mono=0.0)
    assert not watch.look(board, 3, now_mono=1.0)  # nobody claimed the slot
    pid = os.fork()
    if pid == 0:  # the worker: its own mapping of the same file
        child = LivenessBoard(tmp_path / "board")
        child.claim(3, 7)
        child.beat(3, 7)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert watch.look(board, 3, now_mono=2.0) and watch.moved_mono == 2.0
    assert not watch.look(board, 3, now_mono=3.0)  # no beat since: it did not move
    assert watch.moved_mono == 2.0
    board.beat(3, 7)
    assert watch.look(board, 3, now_mono=4.0)
    board.claim(3, 8)  # a new incarnation takes the slot: the old watch never sees it
    board.beat(3, 8)
    assert not watch.look(board, 3, now_mono=5.0)
    assert BeatWatch(token=8, now_mono=5.0).look(board, 3, now_mono=6.0)
    board.close()


def test_board_file_is_private(tmp_path: Path) -> None:
    LivenessBoard(tmp_path / "board", create=True).close()
    assert (tmp_path / "board").stat().st_mode & 0o777 == 0o600


def test_slots_are_reused_and_bounded() -> None:
    slots = SlotAllocator()
    first, second = slots.take(), slots.take()
    assert (first, second) == (1, 2)
    slots.give_back(first)
    assert slots.take() == first
    for _ in range(SLOTS - 3):
        slots.take()
    with pytest.raises(RuntimeError):
        slots.take()


def test_monitor_seats_workers_and_sees_their_beats(tmp_path: Path) -> None:
    from supervisor.liveness import LivenessMonitor

    monitor = LivenessMonitor(tmp_path / "board")
    seat = monitor.seat("bot_a", now_mono=10.0)
    assert monitor.last_beat("bot_a", now_mono=11.0) == 10.0  # seated, no beat yet
    worker = LivenessBoard(Path(seat.path))
    worker.claim(seat.slot, seat.token)
    worker.beat(seat.slot, seat.token)
    assert monitor.last_beat("bot_a", now_mono=12.0) == 12.0
    assert monitor.last_beat("bot_a", now_mono=13.0) == 12.0
    # The supervisor's own beats are what the worker watches.
    supervisor = BeatWatch(seat.supervisor_token, 0.0)
    monitor.beat()
    assert supervisor.look(worker, 0, 1.0)
    # A new incarnation: the old one's beats no longer count, the slot is the same.
    again = monitor.seat("bot_a", now_mono=20.0)
    assert again.slot == seat.slot and again.token != seat.token
    worker.beat(seat.slot, seat.token)
    assert monitor.last_beat("bot_a", now_mono=21.0) == 20.0
    monitor.unseat("bot_a")
    assert monitor.last_beat("bot_a", now_mono=22.0) is None
    assert monitor.seat("bot_b", now_mono=23.0).slot == seat.slot
    # The supervisor's loop reads every slot in one scan: only slots whose counter moved
    # under the seat's own token count, and each is reported once per beat.
    other = monitor.seat("bot_c", now_mono=23.0)
    assert monitor.scan(now_mono=24.0) == []
    worker.claim(other.slot, other.token)
    worker.beat(other.slot, other.token)
    worker.beat(seat.slot, seat.token)  # bot_a's old token on bot_b's slot: not a beat
    assert monitor.scan(now_mono=25.0) == ["bot_c"]
    assert monitor.last_beat("bot_c", now_mono=25.5) == 25.0
    assert monitor.scan(now_mono=26.0) == []
    worker.beat(other.slot, other.token)
    assert monitor.scan(now_mono=27.0) == ["bot_c"]
    worker.close()
    monitor.close()


def test_private_memory_is_resampled_rarely_at_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading smaps_rollup costs ~2 ms: once a minute it was 40 % of an idle worker's CPU.
    None at the start (a fleet's connect paid for 1,000 of them); an idle worker resamples
    every `every_at_rest` s; after activity, every `every` s."""
    from worker import liveness

    now = [1000.0]
    reads: list[float] = []
    monkeypatch.setattr(liveness.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(liveness, "_uss_bytes", lambda: reads.append(now[0]) or len(reads))
    memory = liveness.PrivateMemory(every=60, every_at_rest=600)
    assert memory.bytes(("connecting", 0)) == 0, "no read at the worker's start"
    now[0] += 59
    assert memory.bytes(("connected", 0)) == 0, "nor during its first minute"
    now[0] += 1
    assert memory.bytes(("connected", 0)) == 1
    now[0] += 61
    assert memory.bytes(("connected", 0)) == 1, "idle: no resample after a minute"
    now[0] += 540
    assert memory.bytes(("connected", 0)) == 2, "idle: resampled after every_at_rest"
    now[0] += 30
    assert memory.bytes(("connected", 1)) == 2, "active, but the sample is fresh"
    now[0] += 31
    assert memory.bytes(("connected", 1)) == 3, "active: resampled after a minute"
    assert reads == [1060.0, 1661.0, 1722.0]


def test_private_memory_reads_this_process_uss() -> None:
    """USS (private pages) of this process, never more than it ever had resident."""
    from worker import liveness

    peak = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    assert 0 < liveness._uss_bytes() <= int(peak.split()[1]) * 1024
