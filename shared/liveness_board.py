"""Liveness through shared memory: a counter per worker, read by the supervisor in bulk.

At rest a fleet must cost almost nothing (architecture.md, "Worker <-> supervisor").
A heartbeat message per worker per second, and a ping back, meant two ZeroMQ
messages, their encoding and four event-loop wake-ups per bot per second: at 1,000
bots the idle fleet kept a core busy. Here each worker bumps its own counter in a
memory-mapped file once a second, which is one store into a page it already maps,
and the supervisor scans every slot in one pass per tick. The supervisor bumps slot 0
the same way, so workers see it alive without a ping. Full reports (state, counters)
still travel as ZeroMQ messages, but only when something changed.

Counters, not timestamps: a reader only asks "did it move since I last looked", on its
own monotonic clock, so no clock is shared and a torn read (the two processes do not
lock) can at worst look like one extra beat. Each slot also holds the token of the
incarnation that owns it, so a slot handed to a new worker never counts the beats of
the one before.

Layout: `SLOTS` slots of 16 bytes, native byte order: u64 token, u64 counter. Slot 0
is the supervisor's; bots get slots from 1.
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from pathlib import Path

SLOT = struct.Struct("=QQ")
SLOTS = 65536
"""One per bot that can run at once on this host, plus the supervisor's (1 MiB file)."""
SUPERVISOR_SLOT = 0


class LivenessBoard:
    """One mapping of the board file. Create it in the supervisor, open it in workers."""

    def __init__(self, path: Path, create: bool = False) -> None:
        """Map `path`; with `create` (the supervisor, at start) make it empty and 0600.

        Raises OSError when the file cannot be created or opened.
        """
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, SLOTS * SLOT.size)
            self._map = mmap.mmap(fd, SLOTS * SLOT.size)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._map.close()

    def claim(self, slot: int, token: int) -> None:
        """A worker takes `slot` for its incarnation `token` (non-zero) with counter 0."""
        SLOT.pack_into(self._map, slot * SLOT.size, token, 0)

    def beat(self, slot: int, token: int) -> None:
        """Prove this process's loop is alive: bump the slot's counter (one store)."""
        offset = slot * SLOT.size
        _, count = SLOT.unpack_from(self._map, offset)
        SLOT.pack_into(self._map, offset, token, count + 1)

    def read(self, slot: int) -> tuple[int, int]:
        """(token, counter) of `slot`, unlocked: a torn read only looks like a beat."""
        return SLOT.unpack_from(self._map, slot * SLOT.size)

    def read_all(self, slots: int) -> tuple[list[int], list[int]]:
        """(tokens, counters) of slots 0..`slots`-1 in one copy of the mapping, unlocked."""
        words = array("Q")
        words.frombytes(self._map[:slots * SLOT.size])
        return words[0::2].tolist(), words[1::2].tolist()


class BeatWatch:
    """The reader's side for one slot: when did its counter last move, on our clock."""

    def __init__(self, token: int, now_mono: float) -> None:
        self.token = token
        self.moved_mono = now_mono
        self._count = -1

    def look(self, board: LivenessBoard, slot: int, now_mono: float) -> bool:
        """Read the slot; True (and `moved_mono` = now) when its owner beat since last look."""
        return self.saw(*board.read(slot), now_mono)

    def saw(self, token: int, count: int, now_mono: float) -> bool:
        """The slot read (`token`, `count`) at `now_mono`: True (and `moved_mono` = now)
        when it is this owner's and its counter moved since the last read."""
        if token != self.token or count == self._count:
            return False
        self._count = count
        self.moved_mono = now_mono
        return True


class SlotAllocator:
    """Hands out bot slots 1..SLOTS-1 and takes them back (the supervisor's side)."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = SUPERVISOR_SLOT + 1

    def take(self) -> int:
        """A free slot. Raises RuntimeError when every slot is in use."""
        if self._free:
            return self._free.pop()
        if self._next >= SLOTS:
            raise RuntimeError(f"more than {SLOTS - 1} workers at once")
        self._next += 1
        return self._next - 1

    @property
    def high(self) -> int:
        """One past the highest slot ever handed out: every seat is below it."""
        return self._next

    def give_back(self, slot: int) -> None:
        self._free.append(slot)
