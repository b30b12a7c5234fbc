"""What the zygote does to its memory last, so that its children copy as few pages as possible.

A child shares the zygote's pages copy-on-write: any write to one of them copies 4 KiB into
the child's private memory. CPython's small-object allocator (obmalloc, Objects/obmalloc.c)
serves each allocation from the first partly used pool of its size class, so a child's
allocations land in the free blocks the zygote left scattered over hundreds of its pools,
and each lands on a different shared page (bench/NOTES.md, "Private memory"). Taking every
such free block here, after gc.freeze(), leaves the child no partly used pool: its small
allocations go to pools nobody used, packed densely, and copy a page per 4 KiB allocated
rather than a page per allocation. The blocks are taken with PyObject_Malloc itself and
never freed: no Python object refers to them, so nothing ever writes to them.
"""

import ctypes
import logging
import os
import re
import sys
import tempfile

from worker import libc

logger = logging.getLogger(__name__)

_ROW = re.compile(rb"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", re.MULTILINE)


def obmalloc_free_blocks() -> dict[int, int]:
    """{block size in bytes: free blocks in this process's used pools}, from
    `sys._debugmallocstats()` ("avail blocks" per size class; it prints on fd 2).

    Empty where the interpreter was built without pymalloc (no table printed).
    """
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read()
    return {int(size): int(avail) for _, size, _, _, avail in _ROW.findall(text)
            if int(avail)}


def fill_obmalloc_pools() -> int:
    """Take every free block of the partly used obmalloc pools (see the module docstring);
    returns how many blocks were taken. Call last in the zygote, after gc.freeze().

    Never raises: this only saves memory in the children, so a failure is logged.
    """
    taken = 0
    try:
        malloc = ctypes.pythonapi.PyObject_Malloc
        malloc.argtypes = [ctypes.c_size_t]
        malloc.restype = None  # no Python int per call: that would allocate a block itself
        for size, count in obmalloc_free_blocks().items():
            request = ctypes.c_size_t(size)
            for _ in range(count):
                malloc(request)
            taken += count
    except Exception:
        logger.exception("filling the allocator's free blocks failed; workers share less")
    return taken





M_ARENA_MAX = -8
"""mallopt's parameter number (glibc malloc/malloc.h)."""


def single_malloc_arena() -> None:
    """Every thread of this process, and of every child forked from it, allocates from
    glibc's main arena (as MALLOC_ARENA_MAX=1 would; call before any thread starts).

    By default each thread that calls malloc gets an arena of its own (up to 8 per core):
    the zygote's warm-up threads left arenas that a worker's threads (ZeroMQ's I/O thread,
    the executor of endpoint discovery, the reply senders) then reuse, copying the zygote's
    pages of them, or the workers' threads map fresh ones. A worker runs one bot: its few
    threads do not contend for the lock. Measured in bench/NOTES.md ("Private memory").
    Nothing where glibc is not the C library.
    """
    try:
        libc.load().mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError) as error:
        logger.info("mallopt unavailable: %s", error)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


MALLOC_FILL_SIZES = (65536, 16384, 4096, 1024, 256, 64, 24)
"""Request sizes, largest first, that take glibc's free chunks (24 bytes: its smallest)."""
MALLOC_FILL_MAX = 200_000
"""A bound on the loop, whatever the C library answers."""


def fill_malloc_holes() -> int:
    """Take the free chunks of glibc's main arena (not its top), as `fill_obmalloc_pools`
    does for obmalloc: a child's C allocations (OpenSSL, SQLite, ZeroMQ, CPython objects
    over 512 bytes) then come from the top of the heap, packed, instead of landing in
    holes spread over the zygote's pages. Returns the bytes taken; never raises.

    A request that came from the top chunk (glibc's `keepcost` shrank) is given back and
    the next smaller size is tried.
    """
    taken = 0
    try:
        clib = libc.load()
        clib.mallinfo2.restype = _Mallinfo2
        clib.malloc.restype = ctypes.c_void_p
        clib.malloc.argtypes = [ctypes.c_size_t]
        clib.free.argtypes = [ctypes.c_void_p]
        info = clib.mallinfo2()
        calls = 0
        for size in MALLOC_FILL_SIZES:
            while info.fordblks - info.keepcost >= size and calls < MALLOC_FILL_MAX:
                calls += 1
                pointer = clib.malloc(size)
                after = clib.mallinfo2()
                if pointer and after.keepcost < info.keepcost:
                    clib.free(pointer)
                    info = clib.mallinfo2()
                    break
                taken += size
                info = after
    except (OSError, AttributeError) as error:
        logger.info("glibc malloc statistics unavailable: %s", error)
    except Exception:
        logger.exception("filling malloc's free chunks failed; workers share less")
    return taken
