"""bench/smaps.py: the per-mapping breakdown groups mappings by what holds the pages."""

import os
import threading

from bench import smaps
from bench.smaps import Mapping, group_of

MiB = 1024 * 1024
BASE = 0x7F0000000000  # a multiple of 64 MiB


def test_groups_of_anonymous_mappings():
    mappings = [
        Mapping(BASE, BASE + MiB, "rw-p", ""),                         # glibc thread arena
        Mapping(BASE + MiB, BASE + 64 * MiB, "---p", ""),              # its reserve
        Mapping(BASE + 64 * MiB, BASE + 64 * MiB + 4096, "---p", ""),  # stack guard
        Mapping(BASE + 64 * MiB + 4096, BASE + 72 * MiB, "rw-p", ""),  # thread stack
        Mapping(BASE + 80 * MiB, BASE + 81 * MiB, "rw-p", ""),         # obmalloc arena
        Mapping(BASE + 90 * MiB, BASE + 91 * MiB, "rw-p", "/usr/lib/libcrypto.so.3"),
        Mapping(BASE + 92 * MiB, BASE + 93 * MiB, "rw-p", "/v/site-packages/zmq/x.so"),
        Mapping(BASE + 94 * MiB, BASE + 95 * MiB, "rw-p", "[heap]"),
    ]
    groups = [group_of(mappings, index) for index in range(len(mappings))]
    assert groups == ["glibc thread arenas", "anon (other permissions)",
                      "anon (other permissions)", "thread stacks",
                      "anon (obmalloc arenas, large mmap)", "libcrypto.so.3",
                      "site-packages (extension modules)", "[heap]"]
    assert group_of(mappings, 6, files=True) == "x.so"


def test_breakdown_of_this_process_adds_up_to_its_uss():
    started, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), done.wait(5)))
    thread.start()
    try:
        started.wait(5)
        medians = smaps.median_breakdown([os.getpid()])
        with open("/proc/self/smaps_rollup") as rollup:
            fields = {line.split(":")[0]: int(line.split()[1])
                      for line in rollup.read().splitlines()[1:]}
    finally:
        done.set()
        thread.join()
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    # reading smaps allocates (a large text in this process): pages touched between the reads
    assert abs(medians["total"] - uss) <= uss * 0.05
    assert medians["[heap]"] > 0 and medians["thread stacks"] > 0
    assert "total (USS)" in smaps.table(medians)
