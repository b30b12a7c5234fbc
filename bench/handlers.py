"""Handlers the bench points larkfleet bots at (`{"kind": "python", ...}`)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

STREAM_TOKENS = 20
STREAM_TOKEN_GAP_S = 0.02


async def silent(message: Any) -> None:
    """Do nothing and reply nothing: the counterpart of the bare SDK's empty handler, so
    ACK and throughput figures compare the event path, not a reply."""
    return None


async def stream(message: Any) -> AsyncIterator[str]:
    """A model stand-in: 20 tokens 20 ms apart, the first at once, so the figure measures
    larkfleet's path to the first visible token, not a model's time to think."""
    for number in range(STREAM_TOKENS):
        if number:
            await asyncio.sleep(STREAM_TOKEN_GAP_S)
        yield f"token{number} "
