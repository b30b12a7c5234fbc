"""`python -m bench.orphans [--trials 20] [--bots 3]`: supervisor kill -9 to every worker gone.

Each trial starts a real `larkfleet serve` on the same data dir (the bots come
back connected at boot), SIGSTOPs one worker, SIGKILLs the supervisor and polls
/proc every millisecond until the zygote and every worker are gone (a zombie
counts as gone: nothing of it runs). Prints every sample, p50, p99 and max in
seconds. Slow (one supervisor start per trial), so not part of `make test`;
tests/test_spine.py runs one trial with the same bound.
"""

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.fleet import SILENT, Fleet
from bench.service import alive
from bench.sim import Platform
from bench.stats import percentile

BOUND_S = 1.0
"""The target: every worker gone within 1 s of the supervisor's death, p99."""

log = logging.getLogger("bench.orphans")


def trial(fleet: Fleet, bot_ids: list[str]) -> float:
    """One supervisor start, one SIGSTOPped worker, one kill -9; seconds until all gone."""
    fleet.start()
    statuses = fleet.wait_connected(bot_ids, 60)
    pids = fleet.service.fleet_pids()
    if len(pids) != len(bot_ids) + 1:
        raise RuntimeError(f"expected a zygote and {len(bot_ids)} workers, saw {sorted(pids)}")
    os.kill(statuses[bot_ids[0]]["pid"], signal.SIGSTOP)
    began = time.monotonic()
    os.kill(fleet.supervisor_pid, signal.SIGKILL)
    deadline = began + 10
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            raise TimeoutError(f"orphans still alive after 10 s: {sorted(pids)}")
        time.sleep(0.001)
    took = time.monotonic() - began
    assert fleet.service.process is not None
    fleet.service.process.wait(10)
    fleet.restart_after_kill()
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orphans", description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--bots", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="larkfleet-orphans-") as work:
        platform = Platform(Path(work) / "sim").start()
        fleet = Fleet(Path(work) / "fleet")
        try:
            fleet.start()
            bot_ids = fleet.create_bots(platform.new_apps("orphan", args.bots), platform.url,
                                        SILENT)
            fleet.connect(bot_ids)
            fleet.wait_connected(bot_ids, 60)
            fleet.stop()
            fleet.restart_after_kill()
            samples = []
            for number in range(args.trials):
                samples.append(trial(fleet, bot_ids))
                log.info("trial %d: %.3f s", number + 1, samples[-1])
        finally:
            if fleet.service.process is not None and fleet.service.process.poll() is None:
                fleet.service.kill()
            platform.stop()
    print(f"supervisor kill -9 -> zygote and {args.bots} workers (1 SIGSTOPped) gone, "
          f"{len(samples)} trials: p50 {percentile(samples, 50):.3f} s, "
          f"p99 {percentile(samples, 99):.3f} s, max {max(samples):.3f} s "
          f"(bound {BOUND_S:.1f} s)")
    print("samples:", " ".join(f"{s:.3f}" for s in samples))
    return 0 if percentile(samples, 99) <= BOUND_S else 1


if __name__ == "__main__":
    sys.exit(main())
