"""`python -m bench.latency [--rounds R] [--events N] [--plain]`: ACK and echo latency of
larkfleet against the bare SDK, alternating, several rounds, medians of the per-round p50
and p99; then the first connects after readiness.

The machine the bench runs on is shared and noisy: one bench run compares a bare figure
taken minutes before the larkfleet one. Here a bare bot and a larkfleet bot of each kind
are connected side by side and measured in turn (bare, larkfleet, bare, ...), so a
change's effect shows as a ratio against bare measured under the same load. It is the
tool behind bench/NOTES.md's before/after rows for the event path.
"""

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import measures
from bench.bare import BareFleet
from bench.fleet import ECHO, SILENT, Fleet
from bench.sim import Platform
from bench.stats import percentile

log = logging.getLogger("bench.latency")

CONNECTS = 10


def _p(samples: list[float], q: float) -> float:
    return percentile(samples, q) * 1000


def _rounds(platform: Platform, pairs: dict[str, tuple[str, str]], rounds: int,
            events: int) -> dict[str, list[tuple[float, float]]]:
    """Per round and per side: (p50, p99) in ms of ACK (silent bots) and echo."""
    found: dict[str, list[tuple[float, float]]] = {}
    for number in range(rounds):
        for kind in ("ack", "echo"):
            for side in ("bare", "larkfleet"):
                app_id = pairs[kind][0 if side == "bare" else 1]
                if kind == "ack":
                    samples = measures.ack_latencies(platform, app_id, events, warmup=20)
                else:
                    samples = measures.echo_latencies(platform, app_id, events // 4, timeout=10)
                found.setdefault(f"{kind} {side}", []).append((_p(samples, 50), _p(samples, 99)))
        log.info("round %d: %s", number + 1,
                 ", ".join(f"{k} p99 {v[-1][1]:.2f} ms" for k, v in found.items()))
    return found


def first_connects(platform: Platform, work: Path) -> list[float]:
    """A fresh `larkfleet serve`: once /readyz answers 200, create and connect CONNECTS
    bots one after another; seconds from each connect call to `connected`."""
    fleet = Fleet(work / "cold", env=platform.client_env())
    fleet.start()
    try:
        apps = platform.new_apps("cold", CONNECTS)
        bots = fleet.create_bots(apps, platform.url, SILENT)
        return [measures.connect_time(fleet, [bot], 30)[0] for bot in bots]
    finally:
        fleet.stop()


def run(rounds: int, events: int, use_tls: bool, work: Path) -> str:
    platform = Platform(work / "sim", use_tls=use_tls).start()
    bare = BareFleet(platform, work / "bare")
    try:
        (bare_silent,) = platform.new_apps("bare_silent", 1)
        (bare_echo,) = platform.new_apps("bare_echo", 1)
        bare.start([bare_silent])
        bare.start([bare_echo], mode="echo")
        bare.wait_connected(60)
        fleet = Fleet(work / "fleet", env=platform.client_env())
        fleet.start()
        try:
            (silent_app,) = platform.new_apps("lf_silent", 1)
            (echo_app,) = platform.new_apps("lf_echo", 1)
            silent = fleet.create_bots([silent_app], platform.url, SILENT)
            echo = fleet.create_bots([echo_app], platform.url, ECHO)
            measures.connect_time(fleet, silent + echo, 60)
            pairs = {"ack": (bare_silent[0], silent_app[0]),
                     "echo": (bare_echo[0], echo_app[0])}
            found = _rounds(platform, pairs, rounds, events)
        finally:
            fleet.stop()
    finally:
        bare.stop()
    try:
        connects = first_connects(platform, work)
    finally:
        platform.stop()
    return _report(found, connects, rounds, events, use_tls)


def _report(found: dict[str, list[tuple[float, float]]], connects: list[float], rounds: int,
            events: int, use_tls: bool) -> str:
    lines = [f"{'TLS' if use_tls else 'plain'}, {rounds} rounds, {events} ACK events and "
             f"{events // 4} echo events per side per round; medians of the rounds (ms)"]
    for kind in ("ack", "echo"):
        bare = [statistics.median(v) for v in zip(*found[f"{kind} bare"], strict=True)]
        ours = [statistics.median(v) for v in zip(*found[f"{kind} larkfleet"], strict=True)]
        ratios = [o[1] / b[1] for o, b in zip(found[f"{kind} larkfleet"],
                                              found[f"{kind} bare"], strict=True)]
        lines.append(f"{kind:4}  bare p50/p99 {bare[0]:.2f}/{bare[1]:.2f}  larkfleet "
                     f"{ours[0]:.2f}/{ours[1]:.2f}  p99 ratio {ours[1] / bare[1]:.2f}x "
                     f"(median of per-round ratios {statistics.median(ratios):.2f}x)")
    rest = connects[1:]
    lines.append(f"connect after /readyz: first {connects[0] * 1000:.0f} ms, "
                 f"then median {statistics.median(rest) * 1000:.0f} ms, "
                 f"10th {connects[-1] * 1000:.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=200,
                        help="ACK events per side per round (echo: a quarter of it)")
    parser.add_argument("--plain", action="store_true", help="plain http/ws instead of TLS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="larkfleet-latency-") as work:
        print(run(args.rounds, args.events, not args.plain, Path(work)))
    log.info("done in %.0f s", time.monotonic() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
