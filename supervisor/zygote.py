"""The zygote: a multiprocess forkserver that preloaded what a worker runs once.

Workers are forked from it, so each one starts in milliseconds and shares the
pages of the SDK and larkfleet instead of paying seconds and tens of MB per
process (worker/preload.py). Starting a
process blocks until the forkserver answers, so callers run `spawn` in a
thread; `warm_up` pays the preload once at boot and tells readiness. Workers
are `WorkerProcess` handles: the zygote reaps them, so they are signalled
through a pidfd, never a bare pid that may have been reused.
"""

import contextlib
import logging

import multiprocess
from multiprocess import forkserver
from multiprocess.context import ForkServerContext
from multiprocess.process import BaseProcess

from shared import messages
from shared.messages import WorkerSpec
from supervisor.worker_process import WorkerProcess
from worker import entry

logger = logging.getLogger(__name__)

PRELOAD = ["supervisor.zygote_guard", "supervisor.worker_process", "worker.preload"]
"""zygote_guard first: the zygote's exit takes its workers with it. worker_process holds
the class of the process handle each fork unpickles: not preloaded, every worker imported
it (and multiprocess's popen_forkserver) after the fork. worker.preload comes last: it
freezes the GC over everything imported before. Workers do not re-run the supervisor's
main script (supervisor/worker_process.py `_PidfdPopen._launch`), so nothing of it is
preloaded."""


class Zygote:
    def __init__(self) -> None:
        self._ctx: ForkServerContext = multiprocess.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)

    def warm_up(self) -> None:
        """Start the forkserver and wait for its preload (blocking: run in a thread).

        The probe is a WorkerProcess with a target from `worker.entry`, as a worker is,
        so whatever the first fork would do lazily (in the supervisor or the zygote) is
        done here, before /readyz answers 200.
        """
        probe = WorkerProcess(target=entry.warm_up, name="larkfleet-warmup", daemon=False)
        probe.start()
        probe.join()
        logger.info("zygote ready (preloaded %s)", ", ".join(PRELOAD))

    def pid(self) -> int | None:
        """The forkserver's pid once it runs (multiprocess/forkserver.py keeps it in a
        private attribute: None if a release renames it, and workers then beat as before)."""
        return getattr(forkserver._forkserver, "_forkserver_pid", None)

    def spawn(self, spec: WorkerSpec) -> BaseProcess:
        """Fork a worker for `spec` (blocking until the fork happened: run in a thread)."""
        process = WorkerProcess(
            target=entry.run_worker,
            args=(messages.encode(spec),),
            name=f"larkfleet-{spec.bot.id}",
            daemon=False,
        )
        process.start()
        # BaseProcess.start() first polls every child still in the module's `_children`
        # set (multiprocess/process.py, `_cleanup`): with 1,000 workers that is 1,000 polls
        # per start, O(N^2) over a fleet's connect (bench/NOTES.md, "Connect at N = 1,000").
        # The supervisor tracks its workers itself (pidfd, sentinel), so the handle leaves
        # the set at once; join() and the atexit hook then simply do not see it.
        multiprocess.process._children.discard(process)
        return process


def kill(process: BaseProcess) -> None:
    """SIGKILL a worker through its pidfd (`WorkerProcess`); one that already ended, or
    was never started, is not an error."""
    if process.pid is None:
        return
    with contextlib.suppress(ProcessLookupError, ValueError):
        process.kill()
