"""`larkfleet serve`: startup, run, shutdown, as three steps (after uvicorn's supervisor).

Signal handlers only set an event; the first SIGTERM/SIGINT starts a graceful
stop (API closed, workers told to Stop, SIGKILL after the grace period, exit 0),
a second one kills every worker at once.
"""

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import IO

from aiohttp import web

from api.app import create_app
from shared.logs import configure_logging
from shared.paths import DataPaths
from store import open_store
from supervisor.config import ConfigError
from supervisor.config import load as load_config
from supervisor.config import render as render_config
from supervisor.settings import SupervisorSettings
from supervisor.supervisor import Supervisor

logger = logging.getLogger(__name__)

FORCED_EXIT = 1


class AlreadyRunning(Exception):
    pass


def lock_pid_file(path: Path) -> IO[str]:
    """Hold an exclusive lock on the pid file for the life of the process.

    Two supervisors on one data directory would fight over the same bots and
    sockets; the lock (released by the kernel even on SIGKILL) prevents it.
    """
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.seek(0)
        holder = handle.read().strip()
        message = f"another supervisor (pid {holder}) uses {path.parent.parent}"
        raise AlreadyRunning(message) from error
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


async def serve(paths: DataPaths, host: str, port: int, settings: SupervisorSettings) -> int:
    store = open_store(paths)
    supervisor = Supervisor(paths, store, settings)
    app = create_app(supervisor, store, paths)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info("API listening on http://%s:%d", host, port)

    stop_requested = asyncio.Event()
    forced = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop_requested.is_set():
            forced.set()
        stop_requested.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)

    await supervisor.start()
    await stop_requested.wait()
    logger.info("stopping: API closed, workers told to stop (grace %.0f s)", settings.stop_grace)
    await site.stop()
    shutdown = asyncio.ensure_future(supervisor.shutdown())
    forced_wait = asyncio.ensure_future(forced.wait())
    await asyncio.wait({shutdown, forced_wait}, return_when=asyncio.FIRST_COMPLETED)
    if forced.is_set() and not shutdown.done():
        logger.warning("second signal: killing every worker now")
        supervisor.kill_all()
        return FORCED_EXIT
    forced_wait.cancel()
    await runner.cleanup()
    store.close()
    logger.info("stopped")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args)
    except ConfigError as error:
        print(f"larkfleet serve: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        print(render_config(config), end="")
        return 0
    paths = DataPaths(config.data_dir)
    paths.ensure()
    configure_logging(paths.supervisor_log, config.log_level)
    try:
        pid_lock = lock_pid_file(paths.pid_file)
    except AlreadyRunning as error:
        print(f"larkfleet: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(paths, config.host, config.port, config.settings))
    finally:
        pid_lock.close()
