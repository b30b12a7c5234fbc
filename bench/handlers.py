"""Handlers the bench points larkfleet bots at (`{"kind": "python", ...}`)."""

from typing import Any


async def silent(message: Any) -> None:
    """Do nothing and reply nothing: the counterpart of the bare SDK's empty handler, so
    ACK and throughput figures compare the event path, not a reply."""
    return None
