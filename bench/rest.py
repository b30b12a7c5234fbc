"""`python -m bench.rest --bots N`: CPU at rest of one fleet, split per process kind.

The bench's `CPU at rest` figure is one number for supervisor + zygote + workers; finding
what costs needs the split and several windows. This starts the simulator (TLS) and a
`larkfleet serve` with the shipped defaults, connects N idle echo bots (platform timings,
PingInterval 120 s), waits `--settle` seconds (past the workers' first private-memory
sample, `bench.fleet.FIRST_SAMPLE_S` after their start), then prints, per window, each
kind's user + system CPU as a share of one core (from /proc/<pid>/stat: robust to other
load on the host, unlike wall-clock figures). With `--hold` it then waits until the file
`<work>/STOP` appears, so strace, perf or py-spy can look at the idle processes (their
pids are in `<work>/pids.json`).
"""

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from bench import measures
from bench.fleet import ECHO, FIRST_SAMPLE_S, Fleet
from bench.proc import cpu_seconds
from bench.sim import Platform

log = logging.getLogger("bench.rest")


def split(pids: dict[str, list[int]], window_s: float) -> dict[str, float]:
    """Share of one core each kind of `pids` used over `window_s` (1.0 = a core)."""
    began = time.monotonic()
    before = {kind: cpu_seconds(group) for kind, group in pids.items()}
    time.sleep(window_s)
    took = time.monotonic() - began
    return {kind: (cpu_seconds(group) - before[kind]) / took for kind, group in pids.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rest", description=__doc__)
    parser.add_argument("--bots", type=int, default=300)
    parser.add_argument("--window", type=float, default=60.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=FIRST_SAMPLE_S + 5)
    parser.add_argument("--work", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--hold", action="store_true", help="keep running until <work>/STOP")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="larkfleet-rest-"))
    platform = Platform(work / "sim", use_tls=True).start()
    fleet = Fleet(work / "fleet", env=platform.client_env())
    try:
        fleet.start()
        bots = fleet.create_bots(platform.new_apps("rest", args.bots), platform.url, ECHO)
        seconds, _ = measures.connect_time(fleet, bots, 60 + args.bots * 0.5)
        log.info("%d bots connected in %.1f s; settling %.0f s", args.bots, seconds, args.settle)
        time.sleep(args.settle)
        statuses = fleet.wait_connected(bots, 60)
        zygote = fleet.zygote_pid()
        pids = {"supervisor": [fleet.supervisor_pid], "zygote": [zygote] if zygote else [],
                "workers": [s["pid"] for s in statuses.values()]}
        (work / "pids.json").write_text(json.dumps(pids))
        for _ in range(args.rounds):
            shares = split(pids, args.window)
            total = sum(shares.values())
            print(f"N={args.bots} {args.window:.0f} s: fleet {total * 100:.2f} % of a core "
                  f"(supervisor {shares['supervisor'] * 100:.2f} %, zygote "
                  f"{shares['zygote'] * 100:.2f} %, workers {shares['workers'] * 100:.2f} % = "
                  f"{shares['workers'] / args.bots * 1e6:.0f} us/s per worker)", flush=True)
        while args.hold and not (work / "STOP").exists():
            time.sleep(1)
    finally:
        fleet.stop()
        platform.stop()


if __name__ == "__main__":
    main()
