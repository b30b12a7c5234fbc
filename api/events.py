"""GET /api/feishu/events: the caller's bots' changes as Server-Sent Events.

One `data:` line of JSON per change of one bot (architecture.md): its full
status (`botId`, `state`, counters...) plus `kind` (`snapshot`, `state`,
`counters`, `removed`), `fromState`, `why` and `at` (ISO-8601 UTC). The stream
starts with one `snapshot` line per bot the caller sees and the comment line
`: ready` after the last one, so a client needs no separate list call, and
ends with the service. Records come from the fleet's
one change feed (shared/changes.py); a client that fell behind so far that
records were dropped gets a fresh snapshot instead of a gap. Comment lines
(`: keepalive`) keep idle proxies from closing the stream.
"""

import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from api.auth import owner_scope
from api.keys import FLEET, REGISTRY
from api.routing import Route
from shared.changes import Change, Subscription
from shared.clocks import iso
from shared.status import BotStatus

KEEPALIVE_SECONDS = 15.0
"""A comment line this often on an idle stream (proxies close silent connections)."""
READY = b": ready\n\n"
"""Comment line after the first snapshot: what follows are changes."""
QUEUE = 8192
"""Records a stream may fall behind before it is resynchronised with a snapshot."""


def _line(status: dict[str, Any] | None, **extra: Any) -> bytes:
    payload = {**(status or {}), **extra}
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _status_fields(status: BotStatus, owner: str) -> dict[str, Any]:
    """The status naming its owner, as GET .../ws/status and the bot's record do."""
    fields: dict[str, Any] = msgspec.to_builtins(status)
    fields["owner"] = owner
    return fields


def change_line(change: Change) -> bytes:
    """One SSE record for `change`; a removed bot has only its id and state null."""
    status = (_status_fields(change.status, change.owner)
              if change.status is not None else {"botId": change.bot_id, "state": None})
    return _line(status, kind=str(change.kind), fromState=change.from_state, why=change.why,
                 at=iso(change.at_epoch))


def snapshot_lines(request: web.Request) -> Iterable[bytes]:
    """One `snapshot` record per bot the caller sees, in the store's order."""
    fleet = request.app[FLEET]
    now = iso(time.time())
    for bot_id, owner in request.app[REGISTRY].bot_ids(owner_scope(request)):
        status = _status_fields(fleet.status(bot_id), owner)
        yield _line(status, kind="snapshot", fromState=None, why="snapshot", at=now)


def visible(change: Change, scope: str | None) -> bool:
    return scope is None or change.owner == scope


async def _drain(subscription: Subscription) -> list[Change]:
    """The next record (waiting up to the keepalive) and every one already queued."""
    first = await subscription.get(timeout=KEEPALIVE_SECONDS)
    if first is None:
        return []
    batch = [first]
    while subscription.pending():
        change = await subscription.get(timeout=0)
        if change is None:
            break
        batch.append(change)
    return batch


async def events(request: web.Request) -> web.StreamResponse:
    """Stream until the client leaves or the service stops; subscribes before the snapshot."""
    scope = owner_scope(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    with contextlib.suppress(ConnectionResetError), \
            request.app[FLEET].subscribe(QUEUE) as subscription:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n" + b"".join(snapshot_lines(request)) + READY)
        dropped = 0
        while not subscription.closed:
            batch = await _drain(subscription)
            if subscription.dropped != dropped:
                dropped = subscription.dropped
                await response.write(b"".join(snapshot_lines(request)))
                continue
            if not batch:
                await response.write(b": keepalive\n\n")
                continue
            lines = [change_line(c) for c in batch if visible(c, scope)]
            if lines:
                await response.write(b"".join(lines))
    return response


ROUTES = [
    Route("GET", "/api/feishu/events", events,
          "Server-Sent Events: a snapshot of the caller's bots, then one record per change",
          None, None, (200, 401), content_type="text/event-stream"),
]

