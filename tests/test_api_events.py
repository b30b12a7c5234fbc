"""GET /api/feishu/events: a snapshot, then the caller's bots' change records, nobody else's."""

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from shared.changes import Change, ChangeKind
from shared.states import ConnState
from shared.status import BotStatus
from tests.apikit import SECRETS, Api, api_fixture  # noqa: F401


def records(response: requests.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            yield json.loads(line[len("data: "):])


def publish(api: Api, bot_id: str, owner: str, state: ConnState, **counters: int) -> None:
    change = Change(bot_id=bot_id, owner=owner, kind=ChangeKind.STATE, from_state=None,
                    to_state=state, phase="running", why="test", at_epoch=time.time(),
                    status=BotStatus(bot_id=bot_id, state=state, **counters))
    api._loop.call_soon_threadsafe(api.fleet.changes.publish, change)


def stream(api: Api, session: requests.Session) -> requests.Response:
    response = session.get(f"{api.url}/api/feishu/events", stream=True, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def test_snapshot_then_only_the_callers_changes(api: Api) -> None:
    alice_id, alice = api.new_user("alice")
    bob_id, bob = api.new_user("bob")
    mine = api.create_bot(alice, "cli_alice")
    theirs = api.create_bot(bob, "cli_bob")
    with stream(api, alice) as response:
        lines = records(response)
        snapshot = next(lines)
        assert (snapshot["botId"], snapshot["kind"], snapshot["state"]) == (
            mine, "snapshot", "disconnected")
        assert snapshot["owner"] == alice_id, "the owner, as GET .../ws/status names it"
        wait_listeners(api, 1)
        publish(api, theirs, bob_id, ConnState.CONNECTED)
        publish(api, mine, alice_id, ConnState.CONNECTED, events_received=3)
        change = next(lines)
        assert (change["botId"], change["kind"], change["state"], change["owner"]) == (
            mine, "state", "connected", alice_id)
        assert change["eventsReceived"] == 3 and change["at"].endswith("Z")
        text = json.dumps(change)
        assert not any(secret in text for secret in SECRETS)
    with stream(api, api.admin) as response:
        lines = records(response)
        seen = {record["botId"]: record for record in (next(lines), next(lines))}
        assert set(seen) == {mine, theirs}
        assert seen[theirs]["owner"] == bob_id
    api._loop.call_soon_threadsafe(api.fleet.changes.close)


def test_ready_comment_follows_the_snapshot(api: Api) -> None:
    first = api.create_bot(api.admin, "cli_one")
    second = api.create_bot(api.admin, "cli_two")
    with stream(api, api.admin) as response:
        lines = list(itertools.islice(
            (line for line in response.iter_lines(decode_unicode=True)
             if line.startswith(("data:", ":"))), 3))
        assert [json.loads(line[6:])["botId"] for line in lines[:2]] == [first, second]
        assert lines[2] == ": ready"
    api._loop.call_soon_threadsafe(api.fleet.changes.close)


def test_stream_needs_a_token(api: Api) -> None:
    response = api.anonymous.get(f"{api.url}/api/feishu/events", timeout=5)
    assert response.status_code == 401


def wait_listeners(api: Api, count: int) -> None:
    deadline = time.monotonic() + 5
    while api.fleet.changes.listeners() < count:
        assert time.monotonic() < deadline, "the stream never subscribed"
        time.sleep(0.01)
