"""Which of the zygote's mappings go into huge pages (worker/hugepages.py)."""

from worker.hugepages import HUGE_PAGE, anonymous_ranges

MAPS = """\
55d000000000-55d000a00000 rw-p 00000000 00:00 0                          [heap]
7f0000100000-7f0000700000 rw-p 00000000 00:00 0
7f0000800000-7f0000900000 rw-p 00000000 00:00 0
7f0001000000-7f0001400000 r--p 00000000 00:00 0
7f0002000000-7f0002400000 rw-p 00001000 08:01 123                        /usr/lib/libssl.so.3
7ffc00000000-7ffc00400000 rw-p 00000000 00:00 0                          [stack]
7f0003000000-7f0003400000 rw-s 00000000 00:05 9                          /dev/zero (deleted)
"""


def test_only_aligned_stretches_of_private_writable_anonymous_memory_and_the_heap() -> None:
    assert anonymous_ranges(MAPS) == [
        (0x55D000000000, 0x55D000A00000),   # the brk heap, whole
        (0x7F0000200000, 0x7F0000600000),   # rounded in to 2 MiB boundaries
    ]  # under 2 MiB once aligned, read-only, file-backed, the stack, shared: left alone
    assert all(start % HUGE_PAGE == 0 == end % HUGE_PAGE for start, end in anonymous_ranges(MAPS))
