"""Long-connection mode: endpoint discovery and the /ws socket (handshake refusals,
ping/pong, ACK intake)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid

from aiohttp import WSMsgType, web

from simulator import delivery, frames
from simulator.state import STATE_KEY, App, Connection, SimState

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = 10003
EXCEED_CONN_LIMIT = 1000040350
INVALID_TICKET = 1000040351
routes = web.RouteTableDef()


def _json(code: int, msg: str, data: object = None, status: int = 200) -> web.Response:
    """Every answer carries a `data` object, errors too: the Node SDK reads `data` always."""
    body = {"code": code, "msg": msg, "data": {} if data is None else data}
    return web.json_response(body, status=status)


@routes.post("/callback/ws/endpoint")
async def endpoint(request: web.Request) -> web.Response:
    """Answer like the platform; a bad secret gets a code outside {0, 1, 1000040343}, which
    the SDK treats as permanent (ClientException) instead of retrying forever."""
    state = request.app[STATE_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _json(1, "system busy", status=400)
    app = state.apps.get(str(body.get("AppID", ""))) if isinstance(body, dict) else None
    if app is None:
        return _json(INVALID_CREDENTIALS, "invalid app_id or app_secret")
    app.endpoint_calls += 1
    mode = app.endpoint_mode
    if mode == "hang":
        await _hang(state, app)
        mode = app.endpoint_mode
    fault = app.endpoint_error
    if fault is not None:
        return _json(fault.code, fault.msg, status=fault.status)
    if mode == "error_5xx":
        return _json(1, "system busy", status=503)
    if mode == "invalid_secret" or body.get("AppSecret") != app.app_secret:
        return _json(INVALID_CREDENTIALS, "invalid app_id or app_secret")
    ticket = state.issue_ticket(app.app_id)
    scheme = "wss" if request.secure else "ws"
    url = (  # the platform's query starts fpid, then device_id and service_id
        f"{scheme}://{request.host}/ws?fpid=493&device_id={uuid.uuid4().int >> 64}"
        f"&service_id={random.randrange(1, 2**31)}&access_key={app.app_id}&ticket={ticket}"
    )
    return _json(0, "ok", {"URL": url, "ClientConfig": app.client_config()})


async def _hang(state: SimState, app: App) -> None:
    """Block like a frozen platform until the fault is lifted or the simulator stops."""
    app.endpoint_released.clear()
    closing = asyncio.ensure_future(state.closing.wait())
    released = asyncio.ensure_future(app.endpoint_released.wait())
    try:
        await asyncio.wait({closing, released}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
        released.cancel()
    if state.closing.is_set():
        raise web.HTTPServiceUnavailable()


def _refuse(app: App | None, status: int, msg: str, autherr: int | None = None) -> web.Response:
    if app is not None:
        app.refused_handshakes += 1
    headers = {"handshake-status": str(status), "handshake-msg": msg}
    if autherr is not None:
        headers["handshake-autherrcode"] = str(autherr)
    return web.Response(status=403 if status == 403 else 400, headers=headers, text=msg)


@routes.get("/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    """One client connection: refusals follow the SDK's handshake-* header contract."""
    state = request.app[STATE_KEY]
    query = request.query
    app = state.apps.get(state.tickets.pop(query.get("ticket", ""), ""))
    try:
        service_id = int(query.get("service_id", ""))
    except ValueError:
        service_id = 0
    device_id = query.get("device_id", "")
    if app is None or not device_id or not service_id:
        return _refuse(None, 514, "invalid ticket", INVALID_TICKET)
    if app.handshake_mode == "forbidden":
        return _refuse(app, 403, "app is banned")
    if app.handshake_mode == "auth_failed":
        return _refuse(app, 514, "auth failed", INVALID_TICKET)
    limit = app.max_connections
    if limit is not None and len(app.connections) >= limit:
        return _refuse(app, 514, "exceed connection limit", EXCEED_CONN_LIMIT)

    ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    conn = Connection(app.app_id, device_id, service_id, ws)
    app.connections[device_id] = conn
    app.handshakes += 1
    logger.info("app %s connected device %s", app.app_id, device_id)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await _on_frame(state, app, conn, msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        app.connections.pop(device_id, None)
        for task in conn.pending_pongs:
            task.cancel()
        logger.info("app %s device %s disconnected", app.app_id, device_id)
    return ws


async def _on_frame(state: SimState, app: App, conn: Connection, data: bytes) -> None:
    try:
        frame = frames.parse(data)
    except Exception:
        logger.warning("unparsable frame from %s", conn.device_id)
        return
    kind = frames.header(frame, "type")
    if frame.method == frames.CONTROL and kind == "ping":
        app.pings += 1
        if app.blackhole:
            return
        if app.pong_delay > 0:
            task = asyncio.ensure_future(_pong_later(app, conn, app.pong_delay))
            conn.pending_pongs.add(task)
            task.add_done_callback(conn.pending_pongs.discard)
            return
        await _pong(app, conn)
    elif frame.method == frames.DATA:
        delivery.record_ack(state, app, frame.SeqID, frames.ack_code(frame),
                            frames.ack_data(frame))
    else:
        logger.debug("ignored frame type %s from %s", kind, conn.device_id)


async def _pong(app: App, conn: Connection) -> None:
    await conn.ws.send_bytes(frames.pong(conn.service_id, app.client_config()))
    app.pongs += 1


async def _pong_later(app: App, conn: Connection, delay: float) -> None:
    """The `pongDelay` fault: the pong leaves `delay` s after its ping, if still connected."""
    await asyncio.sleep(delay)
    if not conn.ws.closed and not app.blackhole:
        await _pong(app, conn)
