"""Memory of one process, read from /proc/<pid>/smaps_rollup.

USS (Private_Clean + Private_Dirty) is what one more bot really costs: pages
shared copy-on-write with the zygote, or with other processes, are not in it.
"""

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
