"""`python -m bench.memory --bots N`: private memory of connected idle workers, and where it sits.

Faster than the bench for one figure: starts the simulator (TLS, as production runs) and a
`larkfleet serve` with the shipped defaults, connects N idle echo bots, then after `--idle`
seconds prints the median/min/max USS (Private_Clean + Private_Dirty of smaps_rollup) per
worker, the zygote's, and the median per-mapping breakdown (`bench/smaps.py`). With `--late S`
it measures again S seconds after the last connect (past the worker's own once-a-minute
private-memory sample). `--public-cas` makes the trusted bundle the public CAs plus the
simulator's, as production loads it. `--env NAME=VALUE` adds to the service's
environment (e.g. to try MALLOC_ARENA_MAX).
"""

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import certifi

from bench import measures, smaps
from bench.fleet import ECHO, Fleet
from bench.proc import rss_mib, uss_mib
from bench.sim import Platform

log = logging.getLogger("bench.memory")


def report(label: str, worker_pids: list[int], zygote: int | None, files: bool) -> None:
    """Print the USS figures and the median breakdown of `worker_pids`."""
    uss = [uss_mib(pid) for pid in worker_pids]
    print(f"--- {label}: USS per worker median {statistics.median(uss):.2f} MiB "
          f"(min {min(uss):.2f}, max {max(uss):.2f}, N={len(uss)})", flush=True)
    if zygote:
        print(f"zygote: RSS {rss_mib(zygote):.0f} MiB, USS {uss_mib(zygote):.0f} MiB")
    print(smaps.table(smaps.median_breakdown(worker_pids, files)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--bots", type=int, default=10)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring")
    parser.add_argument("--late", type=float, help="measure again this long after connecting")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--files", action="store_true", help="breakdown per file")
    parser.add_argument("--plain", action="store_true", help="http/ws instead of TLS")
    parser.add_argument("--public-cas", action="store_true",
                        help="trust certifi's public CAs too, as a corporate CA appended to "
                             "the usual bundle is configured (~140 certificates to load)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="larkfleet-memory-") as work_dir:
        work = Path(work_dir)
        platform = Platform(work / "sim", use_tls=not args.plain).start()
        env = platform.client_env()
        if args.public_cas and env:
            bundle = work / "bundle.pem"
            bundle.write_text(Path(certifi.where()).read_text()
                              + Path(env["SSL_CERT_FILE"]).read_text())
            env = {name: str(bundle) for name in env}
        fleet = Fleet(work / "fleet", env={**env, **extra})
        try:
            fleet.start()
            bots = fleet.create_bots(platform.new_apps("mem", args.bots), platform.url, ECHO)
            seconds, statuses = measures.connect_time(fleet, bots, 60 + args.bots)
            connected = time.monotonic()
            log.info("%d bots connected in %.1f s", args.bots, seconds)
            pids = [s["pid"] for s in statuses.values()]
            time.sleep(args.idle)
            report(f"{args.idle:.0f} s idle", pids, fleet.zygote_pid(), args.files)
            if args.late:
                time.sleep(max(0.0, connected + args.late - time.monotonic()))
                report(f"{args.late:.0f} s after connecting", pids, None, args.files)
        finally:
            fleet.stop()
            platform.stop()


if __name__ == "__main__":
    main()
