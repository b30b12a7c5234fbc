"""`python -m worker SPEC` runs one worker from a msgpack-encoded WorkerSpec file.

For tests and debugging; the supervisor forks workers from its zygote instead.
"""

import sys
from pathlib import Path

from worker.main import run_worker

if len(sys.argv) != 2:
    sys.exit("usage: python -m worker <path-to-spec.msgpack>")
run_worker(Path(sys.argv[1]).read_bytes())
