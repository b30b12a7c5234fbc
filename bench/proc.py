"""Memory and CPU time of processes, read from /proc.

Memory comes from /proc/<pid>/smaps_rollup.

USS (Private_Clean + Private_Dirty) is what one more bot really costs: pages
shared copy-on-write with the zygote, or with other processes, are not in it.
"""

import os
from pathlib import Path

MiB = 1024 * 1024


def _rollup(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/smaps_rollup as bytes."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def uss_mib(pid: int) -> float:
    """Private memory of `pid` in MiB."""
    fields = _rollup(pid)
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / MiB


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB (shared pages included)."""
    return _rollup(pid)["Rss"] / MiB


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (a gone process counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / _TICKS


DAMON_KDAMONDS = Path("/sys/kernel/mm/damon/admin/kdamonds")
"""DAMON's sysfs interface (the kernel's Documentation/admin-guide/mm/damon/usage.rst)."""
DAMON_MODULES = Path("/sys/module")
"""DAMON_RECLAIM and DAMON_LRU_SORT run kdamonds of their own, whose pids these modules
publish as `parameters/kdamond_pid` (Documentation/admin-guide/mm/damon/reclaim.rst)."""


def page_monitor_pids() -> list[int]:
    """The threads of the kernel's page-access monitor (DAMON's `kdamond`s) running now, from
    <kdamond>/pid under DAMON_KDAMONDS and the modules' `kdamond_pid`; [] where none runs or
    the interfaces are absent.

    Such a monitor checks sampled pages by walking every page table that maps them, so its
    CPU grows with the pages a fleet's workers share with the zygote (bench/NOTES.md,
    "Connect at N = 1,000"): the bench reports it beside the fleet's own figures.
    """
    pids = []
    pid_files = [*DAMON_KDAMONDS.glob("*/pid"),
                 *DAMON_MODULES.glob("damon_*/parameters/kdamond_pid")]
    for pid_file in sorted(pid_files):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid > 0:
            pids.append(pid)
    return pids
