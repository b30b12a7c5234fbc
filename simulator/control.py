"""The /_sim control API that tests drive: apps, event pushes, faults, observations."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

from shared.jsonbody import decode_json
from simulator import delivery
from simulator.events import MessageSpec, build_event, encode
from simulator.state import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PING_INTERVAL,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_RECONNECT_NONCE,
    DEFAULT_REDELIVER_SCHEDULE,
    DEFAULT_TOKEN_EXPIRE,
    DEFAULT_UUID_TTL,
    STATE_KEY,
    App,
    Delivery,
    EndpointErrorFault,
    ImErrorFault,
    SimState,
)

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()
T = TypeVar("T")

Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegSeconds = Annotated[float, msgspec.Meta(ge=0)]
WholeSeconds = Annotated[int, msgspec.Meta(gt=0)]
"""ClientConfig values are integers on the wire, as the platform sends them."""


class CreateApp(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    app_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    app_secret: Annotated[str, msgspec.Meta(min_length=1)]
    ping_interval: WholeSeconds = DEFAULT_PING_INTERVAL
    reconnect_interval: WholeSeconds = DEFAULT_RECONNECT_INTERVAL
    reconnect_nonce: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_RECONNECT_NONCE
    reconnect_count: int = -1
    ack_timeout: Seconds = DEFAULT_ACK_TIMEOUT
    redeliver_schedule: list[NonNegSeconds] = msgspec.field(
        default_factory=lambda: list(DEFAULT_REDELIVER_SCHEDULE)
    )
    token_expire: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_TOKEN_EXPIRE
    verification_token: str = ""
    encrypt_key: str = ""
    max_connections: Annotated[int, msgspec.Meta(ge=0)] | None = DEFAULT_MAX_CONNECTIONS
    bot_open_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    """What `GET /open-apis/bot/v3/info` answers as the bot's open_id (minted if absent)."""
    bot_name: str = ""
    uuid_ttl: Seconds = DEFAULT_UUID_TTL
    rate_limits: bool = True


class ImErrors(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    count: Annotated[int, msgspec.Meta(ge=0)] = 1
    code: int = 99991400
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] = 429
    msg: str = "request trigger frequency limit"
    reset: Annotated[int, msgspec.Meta(ge=0)] | None = None


class EndpointError(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    code: int
    msg: str = "refused"
    status: Annotated[int, msgspec.Meta(ge=200, le=599)] = 200


class Faults(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    drop: bool = False
    blackhole: bool | None = None
    endpoint: Literal["ok", "invalid_secret", "error_5xx", "hang"] | None = None
    max_connections: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET
    handshake: Literal["ok", "forbidden", "auth_failed"] | None = None
    im_errors: ImErrors | None = None
    endpoint_error: EndpointError | msgspec.UnsetType | None = msgspec.UNSET
    """Answer endpoint discovery with this platform code until cleared (null)."""
    invalidate_token: bool = False
    """Revoke the app's live tenant/app tokens now (99991663 for them from then on)."""
    pong_delay: NonNegSeconds | None = None
    """Seconds each pong is held after its ping (0 = at once): a slow first pong."""
    rate_limits: bool | None = None


class PushEvent(MessageSpec, forbid_unknown_fields=True, kw_only=True):
    fragments: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    wait_ack: Annotated[float, msgspec.Meta(ge=0, le=30)] = 0
    """Seconds to hold the answer for the first ACK: a pusher paces on it without polling."""


class Flood(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    window: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 1
    text: str = "flood"
    timeout: Seconds = 300


def _bad(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status)


async def decode(request: web.Request, kind: type[T]) -> T:
    """Decode a body or raise a 400 naming the offending field (msgspec puts the JSON
    path, e.g. `$.pingInterval`, in its message)."""
    try:
        return decode_json(await request.read() or b"{}", kind)
    except msgspec.ValidationError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": str(exc)}), content_type="application/json"
        ) from None
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON body: {exc}"}),
            content_type="application/json",
        ) from None


def known_app(request: web.Request) -> App:
    app = request.app[STATE_KEY].apps.get(request.match_info["app_id"])
    if app is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "unknown appId"}), content_type="application/json"
        )
    return app


@routes.get("/_sim/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "apps": len(request.app[STATE_KEY].apps)})


@routes.post("/_sim/apps")
async def create_app(request: web.Request) -> web.Response:
    """Re-posting an existing appId answers 409: silently changing a live app's secret
    under a running test would hide bugs."""
    body = await decode(request, CreateApp)
    state = request.app[STATE_KEY]
    if body.app_id in state.apps:
        return _bad(f"appId {body.app_id!r} already exists", 409)
    app = App(
        app_id=body.app_id,
        app_secret=body.app_secret,
        ping_interval=body.ping_interval,
        reconnect_interval=body.reconnect_interval,
        reconnect_nonce=body.reconnect_nonce,
        reconnect_count=body.reconnect_count,
        ack_timeout=body.ack_timeout,
        redeliver_schedule=tuple(body.redeliver_schedule),
        token_expire=body.token_expire,
        verification_token=body.verification_token,
        encrypt_key=body.encrypt_key,
        max_connections=body.max_connections,
        bot_name=body.bot_name,
        uuid_ttl=body.uuid_ttl,
        rate_limits=body.rate_limits,
    )
    if body.bot_open_id:
        app.bot_open_id = body.bot_open_id
    state.apps[app.app_id] = app
    return web.json_response(app.info(), status=201)


@routes.get("/_sim/apps/{app_id}")
async def get_app(request: web.Request) -> web.Response:
    return web.json_response(known_app(request).info())


@routes.get("/_sim/apps/{app_id}/sent")
async def get_sent(request: web.Request) -> web.Response:
    """`?after=N` skips the first N entries, so a poller reads only what is new."""
    try:
        after = max(0, int(request.query.get("after", "0")))
    except ValueError:
        return _bad("after must be an integer ($.after)")
    return web.json_response(known_app(request).sent[after:])


@routes.post("/_sim/apps/{app_id}/events")
async def push_event(request: web.Request) -> web.Response:
    """Pushing an already used eventId sends it again under that id: the way tests fake
    a platform redelivery with different content or timing."""
    app = known_app(request)
    body = await decode(request, PushEvent)
    if not app.connections:
        return _bad("app has no live connection", 404)
    event_id, message_id, envelope = build_event(app, body)
    item = await _start(request.app[STATE_KEY], app, event_id, envelope, body.fragments,
                        body.wait_ack > 0)
    answer: dict[str, Any] = {"eventId": event_id, "messageId": message_id}
    if item.ack_waiter is not None:
        try:
            answer["ack"] = await asyncio.wait_for(item.ack_waiter, body.wait_ack)
        except TimeoutError:
            answer["ack"] = None
    return web.json_response(answer, status=201)


@routes.post("/_sim/apps/{app_id}/flood")
async def flood(request: web.Request) -> web.Response:
    """Push `count` events keeping at most `window` un-ACKed: a load probe whose pusher
    costs one frame per event and no HTTP round trip, so the bot is what is measured.
    Each event waits for its first ACK only (redeliveries still run as usual)."""
    app = known_app(request)
    body = await decode(request, Flood)
    if not app.connections:
        return _bad("app has no live connection", 404)
    state = request.app[STATE_KEY]
    numbers = iter(range(body.count))
    acked = 0

    async def lane() -> None:
        nonlocal acked
        for _ in numbers:
            event_id, _, envelope = build_event(app, MessageSpec(text=body.text))
            item = await _start(state, app, event_id, envelope, 1, wait_ack=True)
            if item.ack_waiter is not None:
                await item.ack_waiter
            acked += 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    lanes = [lane() for _ in range(min(body.window, body.count))]
    try:
        await asyncio.wait_for(asyncio.gather(*lanes), body.timeout)
    except TimeoutError:
        return _bad(f"flood timed out after {acked} of {body.count} ACKs", 504)
    seconds = loop.time() - started
    return web.json_response(
        {"count": body.count, "window": body.window, "seconds": seconds,
         "eventsPerSecond": body.count / seconds if seconds > 0 else None}
    )


async def _start(
    state: SimState, app: App, event_id: str, envelope: dict[str, Any], parts: int,
    wait_ack: bool = False, frame_type: str = "event",
) -> Delivery:
    previous = app.events.get(event_id)
    if previous is not None and previous.timer is not None:
        previous.timer.cancel()
    item = Delivery(event_id, encode(envelope), parts, frame_type=frame_type)
    if wait_ack:
        item.ack_waiter = asyncio.get_running_loop().create_future()
    app.events[event_id] = item
    await delivery.deliver(state, app, item)
    return item


@routes.post("/_sim/apps/{app_id}/events/{event_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    app = known_app(request)
    known = app.events.get(request.match_info["event_id"])
    if known is None:
        return _bad("unknown eventId", 404)
    if not app.connections:
        return _bad("app has no live connection", 404)
    item = Delivery(known.event_id, known.payload, known.parts)
    if known.timer is not None:
        known.timer.cancel()
    app.events[known.event_id] = item
    await delivery.deliver(request.app[STATE_KEY], app, item)
    return web.json_response({"eventId": item.event_id, "seqId": item.seq_id}, status=201)


@routes.post("/_sim/apps/{app_id}/faults")
async def faults(request: web.Request) -> web.Response:
    app = known_app(request)
    body = await decode(request, Faults)
    if body.blackhole is not None:
        app.blackhole = body.blackhole
    if body.endpoint is not None:
        app.endpoint_mode = body.endpoint
        if body.endpoint != "hang":
            app.endpoint_released.set()
    if body.max_connections is not msgspec.UNSET:
        app.max_connections = body.max_connections
    if body.handshake is not None:
        app.handshake_mode = body.handshake
    if body.im_errors is not None:
        e = body.im_errors
        app.im_errors = ImErrorFault(e.count, e.code, e.status, e.msg, e.reset) if e.count else None
    if body.endpoint_error is not msgspec.UNSET:
        e2 = body.endpoint_error
        app.endpoint_error = None if e2 is None else EndpointErrorFault(e2.code, e2.msg, e2.status)
    if body.invalidate_token:
        request.app[STATE_KEY].revoke_tokens(app)
    if body.pong_delay is not None:
        app.pong_delay = body.pong_delay
    if body.rate_limits is not None:
        app.rate_limits = body.rate_limits
    if body.drop:
        conns = list(app.connections.values())
        app.connections.clear()
        await asyncio.gather(
            *(c.ws.close(code=1001, message=b"dropped by simulator") for c in conns)
        )
    logger.info("faults for %s: %s", app.app_id, msgspec.json.encode(body).decode())
    return web.json_response(app.info())
