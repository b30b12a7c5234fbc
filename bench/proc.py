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
