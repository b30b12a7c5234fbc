"""`larkfleet serve`: startup, run, shutdown, as three steps (after uvicorn's supervisor).

Signal handlers only set an event; the first SIGTERM/SIGINT starts a graceful
stop (API closed, workers told to Stop, SIGKILL after the grace period, exit 0),
a second one kills every worker at once.
"""

import argparse
import asyncio
import dataclasses
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn

import psycopg
from aiohttp import web

from api.app import create_app
from shared import exitcodes
from shared.logs import configure_logging
from shared.paths import DataPaths
from store import Store, open_store
from store.postgres.url import masked
from store.records import ADMIN_TOKEN_ENV
from store.secrets_box import SecretKeyError
from supervisor.admintoken import weakness
from supervisor.cluster.node import ClusterNode, LeaseTimings
from supervisor.config import ConfigError, ServeConfig
from supervisor.config import load as load_config
from supervisor.config import render as render_config
from supervisor.placement import SingleNode
from supervisor.preflight import (
    StartupError,
    bind_api,
    check_data_dir,
    check_socket_path,
    resolve_api,
)
from supervisor.supervisor import Supervisor

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
"""Everything this process and its workers create (spools, logs, sockets, the registry,
rotated logs) is readable by the service user only, whatever umask it was started with."""


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
        message = (f"another supervisor (pid {holder}) uses {path.parent.parent}: "
                   "stop it, or pass another --data-dir")
        raise StartupError(exitcodes.SERVE_ALREADY_RUNNING, message) from error
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def open_registry(paths: DataPaths, database_url: str = "") -> Store:
    """The store (which writes admin.token atomically); a bad secret key is one line,
    and so is a PostgreSQL that cannot be reached (cluster mode), password masked."""
    try:
        return open_store(paths, database_url or None)
    except psycopg.Error as error:
        raise StartupError(
            exitcodes.SERVE_DATABASE,
            f"database {masked(database_url)}: {str(error).strip().splitlines()[0]}",
        ) from None
    except SecretKeyError as error:
        raise StartupError(
            exitcodes.SERVE_SECRET_KEY,
            f"{error}: restore the secret key this registry was made with "
            "(LARKFLEET_SECRET_KEY or <data>/secret.key)",
        ) from None


class Signals:
    """Counts SIGTERM/SIGINT for the whole run, so a second one always means "forced".

    While the loop runs, asyncio delivers them; once the loop is done, a plain
    handler takes over, so a second Ctrl-C during the last clean-up can
    neither raise KeyboardInterrupt (exit 130) nor kill the process by default.
    """

    def __init__(self) -> None:
        self.count = 0
        self.stop_requested = asyncio.Event()
        self.forced = asyncio.Event()

    def on_signal(self) -> None:
        self.count += 1
        if self.stop_requested.is_set():
            self.forced.set()
        self.stop_requested.set()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal)

    def hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on count signals without the loop (called once the stop is done).

        The plain handler replaces the loop's at once: `loop.remove_signal_handler`
        first would restore SIG_DFL for an instant, and a SIGTERM then kills the
        process (exit 143). The process must then leave through `exit_now`: the
        interpreter's teardown resets every handler to SIG_DFL before its seconds of
        garbage collection, the window where a second SIGTERM was seen to exit 143.
        `loop` is the loop whose handlers are replaced (kept for the callers' sake).
        """
        del loop
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._late)

    def _late(self, _signum: int, _frame: object) -> None:
        self.count += 1

    @property
    def exit_code(self) -> int:
        return exitcodes.SERVE_FORCED if self.count >= 2 else exitcodes.SERVE_OK


async def started_unless_stopped(supervisor: Supervisor, stop_requested: asyncio.Event) -> bool:
    """Start the supervisor; True once started, False when a stop came first.

    The zygote's warm-up takes seconds (far longer on a loaded host); a Ctrl-C
    right after `make run` must not wait for it. No worker is forked before the
    warm-up ends, so stopping meanwhile has nothing to wait for.
    """
    starting = asyncio.ensure_future(supervisor.start())
    stopping = asyncio.ensure_future(stop_requested.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        stopping.cancel()
        starting.result()
        return True
    logger.info("stop requested while the zygote warms up: not waiting for it")
    starting.add_done_callback(lambda task: task.cancelled() or task.exception())
    return False


async def serve(paths: DataPaths, api_socket: socket.socket, config: ServeConfig) -> NoReturn:
    """Run until a signal; exits the process (`exit_now`) with SERVE_OK, or SERVE_FORCED
    after a second signal, also one during the last clean-up."""
    settings = config.settings
    loop = asyncio.get_running_loop()
    signals = Signals()
    signals.install(loop)
    store = open_registry(paths, config.database_url)
    own_port = api_socket.getsockname()[1]
    settings = dataclasses.replace(settings, security=settings.security.serving_on(own_port))
    node: ClusterNode | None = None
    if config.database_url:
        node = ClusterNode(config.database_url, config.node_id, config.node_address,
                           LeaseTimings.of(settings))
        logger.info("cluster mode: node %s on %s", config.node_id, masked(config.database_url))
    supervisor = Supervisor(paths, store, settings, node or SingleNode(config.node_id))
    app = create_app(supervisor, store, paths, settings.security,
                     webhook_max_inflight=settings.webhook_max_inflight)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, api_socket)
    await site.start()
    host, port = api_socket.getsockname()[:2]
    logger.info("API listening on http://%s:%d", host, port)
    stop_requested, forced = signals.stop_requested, signals.forced

    if node is None:
        await started_unless_stopped(supervisor, stop_requested)
    else:
        await supervisor.start()
        try:
            await node.start(supervisor)
        except psycopg.Error as error:
            raise StartupError(exitcodes.SERVE_DATABASE,
                               f"database {masked(config.database_url)}: {error}") from None
    await stop_requested.wait()
    logger.info("stopping: API closed, workers told to stop (grace %.0f s)", settings.stop_grace)
    await site.stop()

    async def stop_everything() -> None:
        if node is not None:
            await node.leave(supervisor.stop_bound())  # hand every bot over first
        await supervisor.shutdown()
        if node is not None:
            await node.close()

    shutdown = asyncio.ensure_future(stop_everything())
    forced_wait = asyncio.ensure_future(forced.wait())
    await asyncio.wait({shutdown, forced_wait}, return_when=asyncio.FIRST_COMPLETED)
    if forced.is_set() and not shutdown.done():
        logger.warning("second signal: killing every worker now")
        supervisor.kill_all()
        exit_now(exitcodes.SERVE_FORCED)
    forced_wait.cancel()
    await runner.cleanup()
    store.close()
    signals.hand_over(loop)
    logger.info("stopped")
    # Not `return`: the loop's and the interpreter's teardown would follow, with the
    # signal handlers reset to SIG_DFL (and the zygote's warm-up thread could hold the exit).
    exit_now(lambda: signals.exit_code)


def exit_now(code: int | Callable[[], int]) -> NoReturn:
    """Leave at once: no loop clean-up, no interpreter teardown (its final garbage
    collection alone takes seconds on a loaded host). The workers are SIGKILLed
    already, the kernel drops the pid-file lock and the zygote follows its parent.

    `code` is the exit code, or a function giving it, asked after the logs are
    flushed, so a signal counted during the flush still decides it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code() if callable(code) else code)


def add_handler_path(folders: tuple[Path, ...]) -> None:
    """Put the handler folders first on sys.path, before the zygote starts.

    The forkserver takes this process's sys.path when it starts, so every
    worker imports `python` handler targets from these folders; the API's
    check of a target at create time sees the same path.
    """
    for folder in reversed(folders):
        sys.path.insert(0, str(folder))
    if folders:
        logger.info("python handlers are imported from %s", os.pathsep.join(map(str, folders)))


def main(args: argparse.Namespace) -> int:
    """Exit codes: shared/exitcodes.py (SERVE_*); every start-up failure is one line."""
    try:
        config = load_config(args)
    except ConfigError as error:
        print(f"larkfleet serve: {error}", file=sys.stderr)
        return exitcodes.SERVE_CONFIG
    if args.print_config:
        print(render_config(config), end="")
        return exitcodes.SERVE_OK
    env_token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    weak = weakness(env_token) if env_token else None
    if weak is not None:
        print(f"larkfleet serve: {ADMIN_TOKEN_ENV} {weak}; generate one with"
              " `openssl rand -hex 32`, or unset it to use <data>/admin.token", file=sys.stderr)
        return exitcodes.SERVE_WEAK_ADMIN_TOKEN
    os.umask(PRIVATE_UMASK)
    paths = DataPaths(config.data_dir)
    try:
        resolve_api(config.host, config.port)
        check_socket_path(paths)
        check_data_dir(paths)
        pid_lock = lock_pid_file(paths.pid_file)
    except StartupError as error:
        print(f"larkfleet serve: {error}", file=sys.stderr)
        return error.code
    try:
        api_socket = bind_api(config.host, config.port)
        configure_logging(paths.supervisor_log, config.log_level)
        paths.make_private()
        add_handler_path(config.handler_path)
        return asyncio.run(serve(paths, api_socket, config))
    except KeyboardInterrupt:
        return exitcodes.SERVE_FORCED  # only in the instant the loop hands signals over
    except StartupError as error:
        print(f"larkfleet serve: {error}", file=sys.stderr)
        return error.code
    finally:
        pid_lock.close()
