"""The worker process entry: called in the child forked from the zygote.

Everything process-wide happens here, once, before the session starts: the
parent death signal and the release of the zygote's "alive" pipe, the per-bot
log file with the bot's secrets redacted, and a fresh asyncio loop handed to
the SDK (its module-level loop was created in the zygote and is shared over
fork, so it must never run here).
"""

import asyncio
import logging
import os
from pathlib import Path

import lark_oapi.ws.client as sdk_client
from setproctitle import setproctitle

from shared import exitcodes, lazysdk
from shared.logs import configure_logging, redactor
from shared.messages import WorkerSpec, decode_spec
from shared.paths import DataPaths
from worker import proxy, sdkhttp
from worker.control import ControlChannel
from worker.liveness import die_with_parent, release_zygote
from worker.session import WorkerSession

logger = logging.getLogger(__name__)


def run_worker(spec_bytes: bytes) -> None:
    """Run one bot's worker and end the process; the exit code is the contract.

    STOPPED 0 (asked to stop), PERMANENT 3 (the platform refused for good),
    TRANSIENT 4 (lost or could not connect; also any crash), SUPERVISOR_GONE 5.
    Ends with os._exit so no interpreter shutdown waits for a thread stuck in
    the SDK's endpoint POST.
    """
    code = exitcodes.TRANSIENT
    try:
        die_with_parent()
        if not release_zygote():
            code = exitcodes.SUPERVISOR_GONE
            return
        if lazysdk.preload_choice() == "used":
            lazysdk.on_init = _late_sdk_load  # here, not in _run: the zygote's warm-up runs that
        code = _run(decode_spec(spec_bytes))
    except BaseException:
        logger.exception("worker crashed")
    finally:
        logging.shutdown()
        os._exit(code)


def process_title(spec: WorkerSpec) -> str:
    """`larkfleet worker <bot-id> <name>`: what ps and top show (architecture.md)."""
    name = " ".join(spec.bot.name.split())  # one line, whatever the name holds
    return f"larkfleet worker {spec.bot.id} {name}".rstrip()


def _run(spec: WorkerSpec) -> int:
    paths = DataPaths(Path(spec.data_dir))
    setproctitle(process_title(spec))
    redactor.add(*spec.bot.secrets())
    configure_logging(paths.bot_log(spec.bot.id), spec.log_level, stderr=False)
    logger.info(
        "worker for bot %s (incarnation %d, pid %d, %s mode)",
        spec.bot.id,
        spec.incarnation,
        os.getpid(),
        "websocket" if spec.bot.use_websocket else "webhook",
    )
    logger.info("platform connections proxy: %s",
                proxy.apply(spec.bot.options.proxy or spec.proxy or None))
    sdkhttp.install()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sdk_client.loop = loop
    return loop.run_until_complete(_serve(spec))


def _late_sdk_load(package: str) -> None:
    """Log an SDK package whose `__init__` ran in this worker (shared/lazysdk.py `on_init`,
    set by `run_worker` only under LARKFLEET_SDK_PRELOAD=used, the default): the zygote did
    not preload it, so what it imports is private to this worker instead of shared. Only a
    handler's own reads get here: larkfleet's imports are all preloaded (the e2e echo test
    checks its bot's log). The first one is a warning that names the setting; the rest are
    debug lines."""
    if _late_sdk_loads:
        logger.debug("SDK package %s loaded in this worker", package)
    else:
        logger.warning(
            "the handler read %s, which the zygote did not preload: its SDK modules load "
            "into this worker alone (seconds of CPU; up to ~130 MB if it uses lark.Client). "
            "Set %s=all to preload the whole SDK once for every worker",
            package, lazysdk.PRELOAD_SETTING)
    _late_sdk_loads.append(package)


_late_sdk_loads: list[str] = []
"""SDK packages whose `__init__` ran in this worker, oldest first."""


async def _serve(spec: WorkerSpec) -> int:
    control = ControlChannel(spec.control_endpoint, spec.bot.id, spec.incarnation)
    try:
        return await WorkerSession(spec, control).run()
    finally:
        control.close()
