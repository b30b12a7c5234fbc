"""The C library, for the few calls the zygote and workers make into it directly
(prctl, mallopt, mallinfo2, malloc/free).

`ctypes.CDLL(None)` is dlopen(NULL): the symbols already loaded into this process, the C
library's among them. `ctypes.util.find_library("c")` would instead run `/sbin/ldconfig -p`
in a subprocess on Linux (CPython's Lib/ctypes/util.py, `_findSoname_ldconfig`): a fork and
an exec in every worker at its start (~2 ms a call; `ldconfig` showed in perf of a 1,000-bot
connect, bench/NOTES.md "Connect at N = 1,000").
"""

import ctypes
import functools


@functools.cache
def load() -> ctypes.CDLL:
    """The process's C library with errno kept for `ctypes.get_errno()`, made once (in the
    zygote, whose workers inherit it); raises OSError where dlopen(NULL) fails (not on
    glibc or musl)."""
    return ctypes.CDLL(None, use_errno=True)
