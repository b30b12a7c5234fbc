"""What the supervisor names as a worker's target: a light module, so the supervisor never
imports the worker (and lark_oapi with it) to pickle the target.

`supervisor/zygote.py` pickles `run_worker` by reference (module and name). Naming
`worker.main.run_worker` directly made the supervisor import worker.main, and with it the
SDK, on its first fork: seconds (6 s measured on a loaded host) paid by the first connect
after /readyz, and ~100 MB the supervisor never uses. In the child, forked from the zygote
that preloaded worker.main, the import below costs nothing.
"""


def run_worker(spec_bytes: bytes) -> None:
    """Run one bot's worker and end the process (worker/main.py `run_worker`)."""
    from worker.main import run_worker as run

    run(spec_bytes)


def warm_up() -> None:
    """The zygote's warm-up child: proves the preload finished, through the same pickling
    and forkserver path a worker takes, so the first real fork pays nothing lazy."""
