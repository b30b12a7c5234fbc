"""Worker exit codes: how the supervisor tells a boot failure from a crash.

Like gunicorn's WORKER_BOOT_ERROR, a dedicated code for a permanent failure
means bad credentials never loop through restarts.
"""

STOPPED = 0
"""Stopped on request (Stop message, SIGTERM): no restart."""

PERMANENT = 3
"""The platform refused for good (bad credentials, no permission, connection limit)."""

TRANSIENT = 4
"""Lost or could not open the connection for a reason worth retrying."""

SUPERVISOR_GONE = 5
"""The supervisor stopped answering; the worker left rather than become an orphan."""


# -- `larkfleet serve`: why it could not start (or how it stopped) ---------------
# One line on stderr says what and how to fix it; the code lets a script or a
# service manager tell the causes apart. 2 is argparse's own usage error.

SERVE_OK = 0
"""Stopped gracefully (one SIGTERM/SIGINT)."""

SERVE_FORCED = 1
"""A second SIGTERM/SIGINT arrived while stopping: every worker was SIGKILLed."""

SERVE_CONFIG = 2
"""A bad flag, variable or config file entry (the message names it)."""

SERVE_PORT_IN_USE = 10
"""Another process listens on the API's host:port."""

SERVE_CANNOT_LISTEN = 11
"""The API's address cannot be bound for another reason (unknown host, privileged port)."""

SERVE_DATA_DIR_NOT_A_DIRECTORY = 12
"""--data-dir (or a folder it needs) exists but is not a directory."""

SERVE_DATA_DIR_NOT_WRITABLE = 13
"""The data directory cannot be created or written (permissions, read-only file system)."""

SERVE_SOCKET_PATH_TOO_LONG = 14
"""<data-dir>/run/ctl.sock would be longer than a Unix socket path may be (107 bytes)."""

SERVE_ALREADY_RUNNING = 15
"""Another supervisor holds this data directory's pid-file lock."""

SERVE_SECRET_KEY = 16
"""The secret key cannot be read or does not match the registry."""

SERVE_DATABASE = 17
"""`larkfleet serve --database`: PostgreSQL unreachable or refusing (password masked)."""

SERVE_WEAK_ADMIN_TOKEN = 18
"""LARKFLEET_ADMIN_TOKEN is under 32 characters, a placeholder or too repetitive."""
