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
