"""The zygote's preloaded heap in huge pages, so each fork copies ~100 entries, not ~45,000.

Every worker is an `os.fork()` of the zygote, one after another in the zygote's single
thread: the zygote is the one serial step of connecting a fleet. A fork copies the page
table of every private anonymous page (the zygote holds ~175 MB of them after the
preload: ~45,000 entries), which cost ~5 ms of the zygote's CPU per fork measured on
2 cores, and far more wall time while hundreds of starting workers compete for them
(bench/NOTES.md). With that heap in 2 MiB pages a fork copies one entry per 2 MiB.

`madvise(MADV_COLLAPSE)` (Linux 6.1+, madvise(2)) collapses the ranges now, whatever
the sysfs THP mode (unless it is `never`), without marking them for khugepaged: a
worker's own memory is never collapsed later, so its private pages stay 4 KiB. When a
worker first writes to a shared huge page, the kernel splits that mapping in the worker
and copies only the 4 KiB page written (mm/huge_memory.c, `do_huge_pmd_wp_page`), so the
private memory per worker does not grow. The collapse costs ~0.4-0.5 s once, in the
zygote's warm-up before /readyz answers 200. Best effort: an older kernel, no free huge
pages or a sandbox refusing madvise leave the heap as it was.
"""

import ctypes
import ctypes.util
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

MADV_COLLAPSE = 25
"""From linux/mman.h (6.1+)."""
HUGE_PAGE = 2 << 20
"""x86-64 and arm64 (4 KiB base pages): a PMD maps 2 MiB."""


def anonymous_ranges(maps: str) -> list[tuple[int, int]]:
    """(start, end) of each 2 MiB-aligned stretch inside the private writable anonymous
    mappings (and the brk heap) of a /proc/<pid>/maps text; stacks and files excluded."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue
        low, high = (int(address, 16) for address in fields[0].split("-"))
        start, end = -(-low // HUGE_PAGE) * HUGE_PAGE, high // HUGE_PAGE * HUGE_PAGE
        if end > start:
            ranges.append((start, end))
    return ranges


def collapse_heap() -> int:
    """Collapse this process's anonymous memory into huge pages; returns the bytes
    collapsed (0 when the kernel cannot). Call once in the zygote, after the preload."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        ranges = anonymous_ranges(Path("/proc/self/maps").read_text())
    except (OSError, AttributeError) as error:
        logger.info("zygote heap stays in 4 KiB pages (%s)", error)
        return 0
    collapsed = 0
    for start, end in ranges:
        if madvise(start, end - start, MADV_COLLAPSE) == 0:
            collapsed += end - start
    logger.info("zygote heap: %d MiB in huge pages", collapsed >> 20)
    return collapsed
