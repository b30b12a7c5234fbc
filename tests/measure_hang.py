"""Hang detection, measured: SIGSTOP a connected worker, time until a replacement is connected.

    python -m tests.measure_hang [--trials 10]

Real `larkfleet serve` (the tests' FAST_ENV: 3 s heartbeat timeout) and the simulator;
prints every trial and the max. The issue's bound: max of 10 <= 6 s.
"""

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path

from simulator.client import SimClient
from simulator.testing import SimulatorThread
from tests.fixtures.service import Service, alive
from tests.soak import FAST_APP


def measure(trials: int) -> list[float]:
    times: list[float] = []
    with SimulatorThread() as simulator:
        sim = SimClient(simulator.url)
        sim.create_app("cli_hang", "secret-hang", **FAST_APP)
        service = Service(Path(tempfile.mkdtemp(prefix="larkfleet-hang-")) / "data").start()
        try:
            bot_id = service.create_bot("cli_hang", "secret-hang", simulator.url)
            service.connect(bot_id)
            for trial in range(trials):
                status = service.wait_state(bot_id, "connected", 30)
                os.kill(status["pid"], signal.SIGSTOP)
                stopped = time.monotonic()
                service.wait_status(
                    bot_id, lambda s, p=status["pid"]: s["state"] == "connected"
                    and s["pid"] != p, 30, "a connected replacement", )
                times.append(time.monotonic() - stopped)
                if alive(status["pid"]):
                    os.kill(status["pid"], signal.SIGKILL)
                print(f"trial {trial + 1}: {times[-1]:.2f} s", flush=True)
        finally:
            service.stop()
    print(f"SIGSTOP to replaced and connected: max {max(times):.2f} s of {trials} "
          f"(min {min(times):.2f}, mean {sum(times) / len(times):.2f})")
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    measure(parser.parse_args().trials)
