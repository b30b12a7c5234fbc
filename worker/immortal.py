"""Make the zygote's objects immortal before any worker is forked (CPython 3.12+).

CPython writes an object's reference count on every use, so a worker forked from the
zygote copies a 4 KiB page for nearly every shared object its code touches once, even to
read it (bench/NOTES.md, "Private memory": of ~3,800 pages a worker copied, ~2,000 held a
reference count raised and dropped back, or one word changed). PEP 683 (CPython 3.12)
made objects whose count is `_Py_IMMORTAL_REFCNT` immortal: Py_INCREF and Py_DECREF leave
them unwritten (Include/object.h of 3.12: the low 32 bits all ones on 64-bit builds; 3.13
tests the same bits). The interpreter marks only its static objects and interned strings
so; this module marks every object alive in the zygote after its warm-up, which is what
Instagram's Cinder did before the PEP (`gc.immortalize_heap`) and what the PEP names as
its motivation for pre-fork servers.

What immortal means for these objects: they are never freed, by the zygote or by a worker,
so nothing that exists here may rely on being finalised by its last reference going away
in a worker (close files and sockets explicitly; the zygote's own are, see
worker/prewarm.py). Objects a worker creates after the fork are ordinary.

On 3.11 there is no immortality (every Py_INCREF writes), so `immortalize_heap` does
nothing there and says so.
"""

import ctypes
import gc
import itertools
import logging
import os
import sys
import time
import types

log = logging.getLogger(__name__)

# Include/object.h (3.12, 3.13), 64-bit builds: _Py_IMMORTAL_REFCNT is UINT_MAX, and an
# object is immortal when its count, read as a 32-bit signed int, is negative.
IMMORTAL_REFCNT = 0xFFFFFFFF
SWITCH = "LARKFLEET_IMMORTAL_OBJECTS"
"""Environment variable: `0` skips the marking. The zygote is then ready ~1 s sooner and
each worker keeps ~6 MiB more private memory; the test suite's services set it (they start
dozens of zygotes and measure no memory), the bench and the shipped defaults leave it on."""
MORTAL_BELOW = 2**31  # sys.getrefcount of an immortal object is IMMORTAL_REFCNT
CHUNK = 2048  # objects visited per step of the walk


def _supported() -> bool:
    """True where a count of IMMORTAL_REFCNT stops Py_INCREF writing: checked on a
    throwaway object, not assumed from the version (free-threaded builds count apart)."""
    if sys.version_info < (3, 12) or sys.maxsize <= 2**32:
        return False
    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        return False
    probe = object()
    count = ctypes.c_ssize_t.from_address(id(probe))
    count.value = IMMORTAL_REFCNT
    held = [probe, probe, probe]
    unchanged = count.value == IMMORTAL_REFCNT
    del held
    return unchanged


def _code_parts(code: types.CodeType) -> tuple:
    """The objects a code object holds that `gc.get_referents` cannot see (code objects
    are not GC containers, so the collector never traverses them)."""
    return (code.co_consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_filename, code.co_name, code.co_qualname,
            code.co_code, code.co_linetable, code.co_exceptiontable)


def _mortal(objects: list) -> list:
    """The objects of `objects` not immortal yet, each once, filtered at C speed (a walk
    meets the same objects many times: ~3.8 visits per object marked)."""
    counts = map(sys.getrefcount, objects)
    mortal = list(itertools.compress(objects, map(MORTAL_BELOW.__gt__, counts)))
    return list(dict(zip(map(id, mortal), mortal, strict=True)).values())


def immortalize_heap() -> int:
    """Mark every object reachable from the collector's lists immortal.

    Walks `gc.get_objects()` (every tracked container) and, from them, every object they
    refer to, including untracked ones (strings, numbers, bytes, tuples of atoms) and what
    code objects hold; an object already immortal is not walked again, so the mark is the
    walk's own visited set. The walk goes depth first in chunks of CHUNK objects, so its
    lists stay small (a breadth-first walk held ~45 MB of lists at its widest, which the
    zygote then kept). Call in the zygote after its warm-up and `gc.collect()`, before
    `gc.freeze()`.

    Returns how many objects were marked (0 where unsupported).
    """
    if os.environ.get(SWITCH, "1") == "0":
        log.info("objects not made immortal: %s=0", SWITCH)
        return 0
    if not _supported():
        log.info("objects not made immortal: needs CPython 3.12+ (64-bit, with the GIL)")
        return 0
    started = time.monotonic()
    # One pointer over the address space: counts[id(obj) // 8 - 1] is obj's ob_refcnt (the
    # first word of every object, which is 16-byte aligned; ctypes refuses a NULL base, so
    # the base is address 8). No ctypes object is made per visit.
    counts = ctypes.cast(8, ctypes.POINTER(ctypes.c_ssize_t))
    code_type = types.CodeType
    stack = [iter(gc.get_objects())]
    marked = 0
    while stack:
        visits = list(itertools.islice(stack[-1], CHUNK))
        if not visits:
            stack.pop()
            continue
        fresh = _mortal(visits)
        held = []
        for obj in fresh:
            counts[(id(obj) >> 3) - 1] = IMMORTAL_REFCNT
            if type(obj) is code_type:
                held.extend(_code_parts(obj))
        marked += len(fresh)
        if held:
            stack.append(iter(held))
        if fresh:
            stack.append(iter(gc.get_referents(*fresh)))
    log.info("made %d objects immortal in %.2f s", marked, time.monotonic() - started)
    return marked
