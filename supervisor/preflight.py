"""Checks `larkfleet serve` makes before it touches anything, each a one-line failure.

A start-up failure must say what is wrong and how to fix it, in one line, with
its own exit code (shared/exitcodes.py), never a traceback: the operator reads
it in a terminal or in `journalctl`, and a script tells the causes apart by the
code. The API socket is bound here, before the registry is opened, so a port
held by another service is found before anything is written.
"""

import errno
import os
import socket
import tempfile

from shared import exitcodes
from shared.paths import DataPaths

UNIX_SOCKET_PATH_MAX = 107
"""sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL (unix(7))."""


class StartupError(Exception):
    """Why the service cannot start: `code` is the process exit code, str() the one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_data_dir(paths: DataPaths) -> None:
    """Create the data directory tree and prove it writable; raises StartupError.

    Root passes permission bits, so writability is proven by creating a file,
    not by os.access.
    """
    root = paths.root
    for path in (root, paths.logs_dir, root / "bots", paths.run_dir):
        try:
            is_file = path.exists() and not path.is_dir()
        except OSError as error:  # a parent we may not search
            raise StartupError(
                exitcodes.SERVE_DATA_DIR_NOT_WRITABLE,
                f"data directory {root} cannot be reached ({error.strerror}): "
                "fix the permissions of its parents, or pass another --data-dir "
                "(LARKFLEET_DATA_DIR)",
            ) from None
        if is_file:
            raise StartupError(
                exitcodes.SERVE_DATA_DIR_NOT_A_DIRECTORY,
                f"data directory {path} is a file, not a directory: "
                "move it away or pass another --data-dir (LARKFLEET_DATA_DIR)",
            )
    try:
        paths.ensure()
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except NotADirectoryError as error:
        raise StartupError(
            exitcodes.SERVE_DATA_DIR_NOT_A_DIRECTORY,
            f"data directory {root}: a parent is a file ({error.strerror}): "
            "pass another --data-dir (LARKFLEET_DATA_DIR)",
        ) from None
    except OSError as error:
        raise StartupError(
            exitcodes.SERVE_DATA_DIR_NOT_WRITABLE,
            f"data directory {root} is not writable ({error.strerror}): "
            "fix its owner or permissions, or pass a writable --data-dir (LARKFLEET_DATA_DIR)",
        ) from None


def check_socket_path(paths: DataPaths) -> None:
    """The control socket's path must fit in sun_path; raises StartupError."""
    length = len(os.fsencode(paths.control_socket))
    root_length = len(os.fsencode(paths.root))
    if length > UNIX_SOCKET_PATH_MAX:
        raise StartupError(
            exitcodes.SERVE_SOCKET_PATH_TOO_LONG,
            f"data directory path too long: {paths.control_socket} is {length} bytes, "
            f"a Unix socket path may have {UNIX_SOCKET_PATH_MAX}: "
            f"use a --data-dir of at most {UNIX_SOCKET_PATH_MAX - length + root_length} bytes",
        )


def resolve_api(host: str, port: int) -> list[tuple]:
    """getaddrinfo for the API's address; raises StartupError (SERVE_CANNOT_LISTEN) for an
    unknown host. Called before anything is touched, and again by bind_api."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartupError(
            exitcodes.SERVE_CANNOT_LISTEN,
            f"cannot listen on {host}:{port}: unknown host ({error.strerror}): "
            "pass another --host (LARKFLEET_HOST)",
        ) from None


def bind_api(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port, not yet listening (aiohttp listens on it later).

    Raises StartupError: SERVE_PORT_IN_USE when another process holds the
    port, SERVE_CANNOT_LISTEN for any other bind failure.
    """
    family, kind, proto, _, address = resolve_api(host, port)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise StartupError(
                exitcodes.SERVE_PORT_IN_USE,
                f"port {port} on {host} is already in use by another process: stop it "
                "or pass another --port (LARKFLEET_PORT, or `make run PORT=...`)",
            ) from None
        raise StartupError(
            exitcodes.SERVE_CANNOT_LISTEN,
            f"cannot listen on {host}:{port} ({error.strerror}): "
            "pass another --host/--port (LARKFLEET_HOST, LARKFLEET_PORT)",
        ) from None
    sock.setblocking(False)
    return sock


def port_is_free(host: str, port: int) -> bool:
    """True when host:port can be bound now (for `larkfleet demo`'s choice of ports)."""
    try:
        bind_api(host, port).close()
    except StartupError:
        return False
    return True

