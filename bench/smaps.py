"""`python -m bench.smaps PID...`: where a process's private memory sits, per mapping group.

smaps_rollup gives one USS figure; this splits it by what holds the pages, read from
/proc/<pid>/smaps (Private_Clean + Private_Dirty of each mapping), so a lever is chosen by
measurement. Groups:

- `[heap]`: the brk heap, glibc's main malloc arena (small C allocations: OpenSSL, SQLite,
  and CPython objects larger than 512 bytes).
- `glibc thread arenas`: anonymous mappings at a 64 MiB boundary with their PROT_NONE
  reserve right after (glibc `new_heap`); one per thread that called malloc, up to
  MALLOC_ARENA_MAX.
- `thread stacks`: anonymous read-write mappings right after a 4 KiB PROT_NONE guard.
- `anon (obmalloc arenas, large mmap)`: the other anonymous read-write mappings: CPython's
  256 KiB obmalloc arenas (adjacent ones merge into one mapping) and malloc blocks over the
  mmap threshold.
- a file-backed mapping counts under its file's name (`libcrypto.so.3`, `python3.11`,
  `_ssl.cpython-311...so`): private pages there are relocated or written data segments;
  files under a `site-packages` folder are summed into one group unless `--files`.
- `[stack]`, `[vvar]` and the like under their own names.
"""

import argparse
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ARENA_ALIGN = 64 * 1024 * 1024
"""glibc's HEAP_MAX_SIZE on 64-bit: per-thread arenas are reserved at this alignment."""
GUARD = 4096


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    private_kib: int = 0
    fields: dict[str, int] = field(default_factory=dict)


def read_mappings(pid: int | str) -> list[Mapping]:
    """The mappings of /proc/<pid>/smaps with their kB fields; raises OSError if gone."""
    mappings: list[Mapping] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):
            start, _, end = head.partition("-")
            parts = rest.split(None, 4)
            mappings.append(Mapping(int(start, 16), int(end, 16), parts[0],
                                    parts[4].strip() if len(parts) > 4 else ""))
        elif head.endswith(":") and mappings:
            values = rest.split()
            if len(values) == 2 and values[1] == "kB":
                mappings[-1].fields[head[:-1]] = int(values[0])
    for mapping in mappings:
        mapping.private_kib = (mapping.fields.get("Private_Clean", 0)
                               + mapping.fields.get("Private_Dirty", 0))
    return mappings


def group_of(mappings: list[Mapping], index: int, files: bool = False) -> str:
    """The group name of `mappings[index]` (see the module docstring)."""
    mapping = mappings[index]
    if mapping.path:
        if mapping.path.startswith("["):
            return mapping.path
        if "site-packages/" in mapping.path and not files:
            return "site-packages (extension modules)"
        return Path(mapping.path).name or mapping.path
    if not mapping.perms.startswith("rw"):
        return "anon (other permissions)"
    before = mappings[index - 1] if index > 0 else None
    after = mappings[index + 1] if index + 1 < len(mappings) else None
    if (mapping.start % ARENA_ALIGN == 0 and after is not None and after.start == mapping.end
            and after.perms.startswith("---") and not after.path):
        return "glibc thread arenas"
    if (before is not None and before.end == mapping.start and not before.path
            and before.perms.startswith("---") and before.end - before.start == GUARD):
        return "thread stacks"
    return "anon (obmalloc arenas, large mmap)"


def breakdown(pid: int | str, files: bool = False) -> dict[str, int]:
    """Private KiB of `pid` per group, largest first."""
    mappings = read_mappings(pid)
    totals: dict[str, int] = defaultdict(int)
    for index, mapping in enumerate(mappings):
        if mapping.private_kib:
            totals[group_of(mappings, index, files)] += mapping.private_kib
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def median_breakdown(pids: list[int], files: bool = False) -> dict[str, float]:
    """Per group, the median private KiB over `pids` (a group absent in one counts 0);
    the key "total" holds the median of the totals. Pids that are gone are skipped."""
    found = []
    for pid in pids:
        try:
            found.append(breakdown(pid, files))
        except OSError:
            continue
    if not found:
        return {}
    groups = {name for one in found for name in one}
    medians = {name: statistics.median(one.get(name, 0) for one in found) for name in groups}
    ordered = dict(sorted(medians.items(), key=lambda item: -item[1]))
    ordered["total"] = statistics.median(sum(one.values()) for one in found)
    return ordered


def table(medians: dict[str, float], top: int = 14) -> str:
    """Lines `private KiB  group`, the `top` largest groups, the rest summed."""
    items = [(name, kib) for name, kib in medians.items() if name != "total"]
    lines = [f"{kib:9.0f} KiB  {name}" for name, kib in items[:top]]
    rest = sum(kib for _, kib in items[top:])
    if rest:
        lines.append(f"{rest:9.0f} KiB  ({len(items) - top} more groups)")
    lines.append(f"{medians.get('total', 0):9.0f} KiB  total (USS)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smaps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pids", type=int, nargs="+", help="processes (median per group)")
    parser.add_argument("--files", action="store_true",
                        help="one group per file, site-packages included")
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args(argv)
    medians = median_breakdown(args.pids, args.files)
    if not medians:
        print("no such process", file=sys.stderr)
        return 1
    print(f"median over {len(args.pids)} process(es), private KiB per mapping group")
    print(table(medians, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
