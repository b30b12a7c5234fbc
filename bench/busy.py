"""`python -m bench.busy --bots N`: one busy bot among N idle ones, and what the idle cost.

Issue #16 asks that one active bot's ACK p99 among 1,000 connected idle bots stay within
1.5x of its figure alone. One fleet run (simulator with TLS, `larkfleet serve` with the
shipped defaults, platform timings) measures, in order:

1. the busy bot (`bench.handlers:silent`, durable spool) alone: `--rounds` rounds of
   `--events` events, window 1 (as `bench.measures.ack_latencies`);
2. N idle echo bots connected, then `--settle` seconds (past every worker's first
   private-memory sample, `bench.fleet.FIRST_SAMPLE_S` after its start);
3. the idle workers' wakes: context switches of every thread of every idle worker
   (/proc/<pid>/task/*/status, voluntary + involuntary) over `--window` seconds, and the
   main thread's alone (the event loop's), per worker per second; and in the same window
   the CPU at rest of each process kind, as `python -m bench.rest` reads it;
4. the busy bot again, `--rounds` rounds, beside the N idle bots.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

from bench import measures
from bench.fleet import ECHO, FIRST_SAMPLE_S, SILENT, Fleet
from bench.proc import cpu_seconds
from bench.sim import Platform
from bench.stats import percentile

log = logging.getLogger("bench.busy")


def switches(pid: int) -> tuple[int, int]:
    """(every thread's, the main thread's) voluntary + involuntary context switches."""
    total = main = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        count = sum(int(line.split()[1]) for line in text.splitlines()
                    if "ctxt_switches:" in line)
        total += count
        if task.name == str(pid):
            main = count
    return total, main


def rounds(platform: Platform, app_id: str, count: int, times: int, label: str) -> None:
    for number in range(times):
        samples = measures.ack_latencies(platform, app_id, count, warmup=50)
        print(f"{label} round {number + 1}: ACK p50 {percentile(samples, 50) * 1e3:.2f} ms, "
              f"p99 {percentile(samples, 99) * 1e3:.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.busy", description=__doc__)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=FIRST_SAMPLE_S + 5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work = Path(tempfile.mkdtemp(prefix="larkfleet-busy-"))
    platform = Platform(work / "sim", use_tls=True).start()
    fleet = Fleet(work / "fleet", env=platform.client_env())
    try:
        fleet.start()
        (busy_app, busy_secret), = platform.new_apps("busy", 1)
        busy, = fleet.create_bots([(busy_app, busy_secret)], platform.url, SILENT)
        measures.connect_time(fleet, [busy], 60)
        rounds(platform, busy_app, args.events, args.rounds, "alone")
        idle = fleet.create_bots(platform.new_apps("idle", args.bots), platform.url, ECHO)
        seconds, _ = measures.connect_time(fleet, idle, 60 + args.bots * 0.5)
        log.info("%d idle bots connected in %.1f s; settling %.0f s", args.bots, seconds,
                 args.settle)
        time.sleep(args.settle)
        statuses = fleet.wait_connected(idle, 60)
        workers = [s["pid"] for s in statuses.values()]
        zygote = fleet.zygote_pid()
        kinds = {"supervisor": [fleet.supervisor_pid], "zygote": [zygote] if zygote else [],
                 "workers": workers}
        began = time.monotonic()
        cpu_before = {kind: cpu_seconds(pids) for kind, pids in kinds.items()}
        before = [switches(pid) for pid in workers]
        time.sleep(args.window)
        after = [switches(pid) for pid in workers]
        took = time.monotonic() - began
        cpu = {kind: (cpu_seconds(pids) - cpu_before[kind]) / took for kind, pids in kinds.items()}
        every = sum(a[0] - b[0] for a, b in zip(after, before, strict=True)) / len(workers) / took
        loop = sum(a[1] - b[1] for a, b in zip(after, before, strict=True)) / len(workers) / took
        print(f"idle worker wakes: {every:.3f}/s all threads, {loop:.3f}/s main thread "
              f"({len(workers)} workers, {took:.0f} s)", flush=True)
        total = sum(cpu.values())
        print(f"N={args.bots} {took:.0f} s: fleet {total * 100:.2f} % of a core (supervisor "
              f"{cpu['supervisor'] * 100:.2f} %, zygote {cpu['zygote'] * 100:.2f} %, workers "
              f"{cpu['workers'] * 100:.2f} % = {cpu['workers'] / args.bots * 1e6:.0f} us/s "
              "per worker)", flush=True)
        rounds(platform, busy_app, args.events, args.rounds, f"among {args.bots} idle")
    finally:
        fleet.stop()
        platform.stop()


if __name__ == "__main__":
    main()
