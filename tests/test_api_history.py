"""The per-bot history: state timeline and per-minute counts from the change records."""

import time

from api.history import History, latency
from shared.changes import Change, ChangeKind
from shared.messages import ACK_BUCKETS, Histogram
from shared.states import ConnState
from shared.status import BotStatus
from tests.apikit import HANDLER_SECRET, Api, api_fixture  # noqa: F401


def change(kind: ChangeKind, at: float, state: ConnState, events: int, replies: int) -> Change:
    return Change(bot_id="bot_1", owner="usr_1", kind=kind, from_state=None, to_state=state,
                  phase="running", why="test", at_epoch=at,
                  status=BotStatus(bot_id="bot_1", state=state, events_received=events,
                                   replies_sent=replies, error="boom" if events < 0 else None))


def test_minutes_count_deltas_across_a_worker_restart() -> None:
    history = History()
    minute = 1_800_000_000 // 60 * 60
    history.take(change(ChangeKind.STATE, minute + 1, ConnState.CONNECTED, 0, 0))
    history.take(change(ChangeKind.COUNTERS, minute + 5, ConnState.CONNECTED, 3, 2))
    history.take(change(ChangeKind.COUNTERS, minute + 70, ConnState.CONNECTED, 5, 5))
    # a new incarnation starts its counters at zero: 1 more event, not -4
    history.take(change(ChangeKind.STATE, minute + 80, ConnState.CONNECTING, 0, 0))
    history.take(change(ChangeKind.COUNTERS, minute + 90, ConnState.CONNECTED, 1, 1))
    timeline, minutes = history.of("bot_1", minute + 100)
    assert [(e.from_state, e.to_state) for e in timeline] == [(None, "connected"),
                                                            (None, "connecting")]
    assert [(m.minute - minute, m.events_received, m.replies_sent) for m in minutes] == [
        (0, 3, 2), (60, 3, 4)]
    assert history.of("bot_1", minute + 2 * 86_400) == ([], [])


def test_latency_quantiles_are_bucket_bounds() -> None:
    histogram = Histogram(buckets=[90, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1], sum=1.5, count=100)
    result = latency(histogram, ACK_BUCKETS)
    assert (result.p50, result.p99, result.count) == (0.0005, 0.001, 100)
    assert latency(Histogram(), ACK_BUCKETS).p50 is None


def test_history_route_is_scoped_and_a_forward_secret_survives_an_edit(api: Api) -> None:
    _, alice = api.new_user("alice")
    bot_id = api.create_bot(alice)
    response = api.call(alice, "GET", f"/api/feishu/bots/{bot_id}/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["botId"] == bot_id and body["since"] <= time.time()
    assert body["ackLatency"]["count"] == 3
    _, bob = api.new_user("bob")
    assert api.call(bob, "GET", f"/api/feishu/bots/{bot_id}/history").status_code == 404

    patched = api.call(alice, "PATCH", f"/api/feishu/bots/{bot_id}",
                       json={"handler": {"kind": "forward", "url": "http://127.0.0.1:9/new"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["handler"]["hasSecret"] is True
    assert api.registry.bot_config(bot_id).handler.secret == HANDLER_SECRET
