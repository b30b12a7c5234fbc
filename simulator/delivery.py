"""Event delivery with the platform's at-least-once rules: one random live connection per
attempt, ACK within ackTimeout or redelivery on the app's schedule with the same event_id."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

from simulator import frames
from simulator.state import App, Delivery, SimState, now_ms

logger = logging.getLogger(__name__)


async def deliver(state: SimState, app: App, delivery: Delivery) -> bool:
    """Send one attempt; False when no connection could take it. A blackholed app swallows
    the frames but still starts the ACK timer, as a peer that stopped reading would."""
    live = [c for c in app.connections.values() if not c.ws.closed]
    seq_id = state.next_seq()
    delivery.seq_id = seq_id
    app.pending[seq_id] = delivery
    _arm_timer(state, app, delivery, seq_id)
    if not live:
        return False
    if app.blackhole:
        return True
    conn = random.choice(live)
    data = frames.event_frames(
        delivery.payload,
        seq_id=seq_id,
        log_id=random.randrange(1, 2**62),
        service_id=conn.service_id,
        message_id=uuid.uuid4().hex,
        trace_id=uuid.uuid4().hex,
        timestamp_ms=now_ms(),
        parts=delivery.parts,
        frame_type=delivery.frame_type,
    )
    delivery.sent_at = time.time()
    try:
        for chunk in data:
            await conn.ws.send_bytes(chunk)
    except (ConnectionError, RuntimeError) as exc:
        logger.info("push of %s to %s failed: %s", delivery.event_id, conn.device_id, exc)
        return False
    logger.debug("pushed %s seq=%s to %s", delivery.event_id, seq_id, conn.device_id)
    return True


def _arm_timer(state: SimState, app: App, delivery: Delivery, seq_id: int) -> None:
    loop = asyncio.get_running_loop()
    if delivery.timer is not None:
        delivery.timer.cancel()
    delivery.timer = loop.call_later(app.ack_timeout, _failed, state, app, delivery, seq_id)


def _failed(state: SimState, app: App, delivery: Delivery, seq_id: int) -> None:
    """The attempt with `seq_id` got no 200 in time (or a non-200): schedule the next one."""
    app.pending.pop(seq_id, None)
    if delivery.done or delivery.seq_id != seq_id:
        return
    delivery.timer = None
    if delivery.attempt >= len(app.redeliver_schedule):
        logger.info("event %s gave up after %d redeliveries", delivery.event_id, delivery.attempt)
        return
    wait = app.redeliver_schedule[delivery.attempt]
    delivery.attempt += 1
    loop = asyncio.get_running_loop()
    delivery.timer = loop.call_later(
        wait, lambda: loop.create_task(_redeliver(state, app, delivery, seq_id))
    )


async def _redeliver(state: SimState, app: App, delivery: Delivery, prior_seq: int) -> None:
    if delivery.done or delivery.seq_id != prior_seq:
        return
    await deliver(state, app, delivery)


def record_ack(state: SimState, app: App, seq_id: int, code: int | None,
               data: Any = None) -> None:
    """Every ACK is recorded for tests (with the callback answer it carried, `data`); only a
    200 on the outstanding attempt ends delivery."""
    delivery = app.pending.pop(seq_id, None)
    entry = {
        "eventId": delivery.event_id if delivery else None,
        "seqId": seq_id,
        "code": code,
        "at": time.time(),
        "sentAt": delivery.sent_at if delivery else None,
    }
    if data is not None:
        entry["data"] = data
    app.acked.append(entry)
    if delivery is None:
        return
    if delivery.ack_waiter is not None and not delivery.ack_waiter.done():
        delivery.ack_waiter.set_result(entry)
    if code == 200:
        delivery.done = True
        if delivery.timer is not None:
            delivery.timer.cancel()
            delivery.timer = None
    elif delivery.seq_id == seq_id:
        if delivery.timer is not None:
            delivery.timer.cancel()
        _failed(state, app, delivery, seq_id)
