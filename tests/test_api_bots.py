"""Bots CRUD, connection routes and per-bot routes: owners, validation, secrets, error shapes."""

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.app import all_routes
from bench.service import wait_until
from shared.messages import (
    NO_WORKER,
    RetryDeadLetter,
    RetryResult,
    Send,
    SendResult,
    failed_reply,
)
from tests.apikit import SECRETS, Api, api_fixture, assert_error, bot_body  # noqa: F401
from worker.spool import Spool

BOT_ROUTES = [(r.method, r.path) for r in all_routes() if "{id}" in r.path and "/bots/" in r.path]
BODIES = {
    "PATCH": {"name": "x"},
    "POST": {"receiveId": "ou_1", "receiveIdType": "open_id", "text": "hi"},
}


def test_crud_round_trip_calls_the_fleet_in_order(api: Api) -> None:
    created = api.call(api.admin, "POST", "/api/feishu/bots", json=bot_body())
    assert created.status_code == 201
    bot = created.json()
    assert re.fullmatch(r"bot_[0-9a-f]{12}", bot["id"])
    assert bot["hasAppSecret"] and bot["hasVerificationToken"] and bot["hasEncryptKey"]
    assert bot["handler"] == {"kind": "forward", "url": "http://127.0.0.1:9/hook",
                              "hasSecret": True, "timeout": 10.0}
    assert bot["useWebSocket"] is True and bot["domain"] == "feishu"
    bot_id = bot["id"]

    assert api.call(api.admin, "GET", f"/api/feishu/bots/{bot_id}").json() == bot
    assert api.call(api.admin, "GET", "/api/feishu/bots").json() == {"bots": [bot]}

    patch = {"name": "renamed", "useWebSocket": False, "domain": "http://127.0.0.1:1/"}
    patched = api.call(api.admin, "PATCH", f"/api/feishu/bots/{bot_id}", json=patch).json()
    assert (patched["name"], patched["useWebSocket"], patched["domain"]) == (
        "renamed", False, "http://127.0.0.1:1/")
    assert patched["hasAppSecret"] and patched["handler"]["hasSecret"]
    assert api.registry.bot_config(bot_id).app_secret == SECRETS[0]

    deleted = api.call(api.admin, "DELETE", f"/api/feishu/bots/{bot_id}")
    assert deleted.json() == {"success": True, "botId": bot_id}
    assert api.fleet.calls == [("bot_added", bot_id), ("bot_changed", bot_id),
                               ("bot_removed", bot_id)]
    assert_error(api.call(api.admin, "GET", f"/api/feishu/bots/{bot_id}"), 404, "not_found")


def test_defaults_echo_handler_and_websocket(api: Api) -> None:
    body = {"name": "b", "appId": "cli_x", "appSecret": "s"}
    bot = api.call(api.admin, "POST", "/api/feishu/bots", json=body).json()
    assert bot["handler"] == {"kind": "echo"}
    assert bot["useWebSocket"] is True and bot["domain"] == "feishu"
    assert not bot["hasEncryptKey"] and not bot["hasVerificationToken"]


def test_bot_options_default_safe_validated_and_replaced_whole(api: Api) -> None:
    body = {"name": "b", "appId": "cli_opts", "appSecret": "s"}
    bot = api.call(api.admin, "POST", "/api/feishu/bots", json=body).json()
    assert bot["options"] == {"answerAtAll": False, "answerBots": False,
                              "replyFallback": "drop", "typingReaction": None, "proxy": None}
    path = f"/api/feishu/bots/{bot['id']}"
    patch = {"options": {"answerAtAll": True, "proxy": "http://proxy.internal:3128"}}
    patched = api.call(api.admin, "PATCH", path, json=patch).json()
    assert patched["options"]["answerAtAll"] is True
    assert api.registry.bot_config(bot["id"]).options.proxy == "http://proxy.internal:3128"
    again = api.call(api.admin, "PATCH", path, json={"options": {"replyFallback": "send"}})
    assert again.json()["options"] == {"answerAtAll": False, "answerBots": False,
                                       "replyFallback": "send", "typingReaction": None,
                                       "proxy": None}
    for options, field in (({"proxy": "ftp://x"}, "$.options.proxy"),
                           ({"replyFallback": "retry"}, "$.options.replyFallback"),
                           ({"answerEveryone": True}, "answerEveryone")):
        error = assert_error(api.call(api.admin, "PATCH", path, json={"options": options}), 400)
        assert field in error["message"], error
    schema = api.call(api.admin, "GET", "/api/openapi.json").json()
    assert "BotOptions" in json.dumps(schema)


def test_connect_disconnect_and_status_shapes(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    connect = api.call(api.admin, "POST", f"/api/feishu/bots/{bot_id}/ws/connect")
    assert connect.status_code == 202
    assert connect.json() == {"success": True, "botId": bot_id, "status": "connecting"}
    status = api.call(api.admin, "GET", f"/api/feishu/bots/{bot_id}/ws/status").json()
    assert status["botId"] == bot_id and status["state"] == "connecting"
    for field in ("connectedAt", "lastHeartbeat", "error", "pid", "restarts", "attempt",
                  "nextRetryAt", "eventsReceived", "repliesSent", "pending", "deadLetters"):
        assert field in status
    disconnect = api.call(api.admin, "POST", f"/api/feishu/bots/{bot_id}/ws/disconnect")
    assert disconnect.status_code == 200
    assert disconnect.json() == {"success": True, "botId": bot_id, "status": "disconnected"}
    assert ("connect", bot_id) in api.fleet.calls and ("disconnect", bot_id) in api.fleet.calls


def test_global_status_lists_only_the_callers_bots(api: Api) -> None:
    alice_id, alice = api.new_user("alice")
    _, bob = api.new_user("bob")
    mine = api.create_bot(alice, "cli_a")
    theirs = api.create_bot(bob, "cli_b")
    connections = api.call(alice, "GET", "/api/feishu/ws/status").json()["connections"]
    assert [c["botId"] for c in connections] == [mine]
    # Review: a non-admin saw "owner": null for its own bot, the admin the owner's id.
    assert connections[0]["owner"] == alice_id, "the owner, as the bot's own record names it"
    own = api.call(alice, "GET", f"/api/feishu/bots/{mine}/ws/status").json()
    assert own["owner"] == alice_id
    everything = api.call(api.admin, "GET", "/api/feishu/ws/status").json()["connections"]
    assert {c["botId"] for c in everything} == {mine, theirs}
    assert {c["owner"] for c in everything if c["botId"] == mine} == {alice_id}
    assert [b["id"] for b in api.call(alice, "GET", "/api/feishu/bots").json()["bots"]] == [mine]


@pytest.mark.parametrize(("method", "path"), BOT_ROUTES)
def test_another_owners_bot_is_404_like_a_missing_one(api: Api, method: str, path: str) -> None:
    _, alice = api.new_user("alice")
    _, bob = api.new_user("bob")
    theirs = api.create_bot(bob, "cli_b")
    body = BODIES.get(method)
    url = path.replace("{eventId}", "ev_1")
    foreign = api.call(alice, method, url.replace("{id}", theirs), json=body)
    missing = api.call(alice, method, url.replace("{id}", "bot_000000000000"), json=body)
    assert_error(foreign, 404, "not_found")
    assert_error(missing, 404, "not_found")
    assert foreign.json()["error"]["message"].replace(theirs, "X") == (
        missing.json()["error"]["message"].replace("bot_000000000000", "X"))
    assert [c for c in api.fleet.calls if c[0] != "bot_added"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "b", "appSecret": "s"}, "appId"),
        ({"name": "b", "appId": 5, "appSecret": "s"}, "$.appId"),
        ({"name": "", "appId": "a", "appSecret": "s"}, "$.name"),
        ({"name": "b", "appId": "", "appSecret": "s"}, "$.appId"),
        ({"name": "b", "appId": "a", "appSecret": ""}, "$.appSecret"),
        ({"name": "b", "appId": "a", "appSecret": "s", "useWebSocket": "yes"}, "$.useWebSocket"),
        ({"name": "b", "appId": "a", "appSecret": "s", "domain": "gopher://x"}, "$.domain"),
        ({"name": "b", "appId": "a", "appSecret": "s", "handler": {"kind": "shell"}},
         "$.handler.kind"),
        ({"name": "b", "appId": "a", "appSecret": "s", "handler": {"kind": "forward"}}, "url"),
        ({"name": "b", "appId": "a", "appSecret": "s", "app_id": "typo"}, "app_id"),
        ([1, 2], "object"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(api: Api, body: object, field: str) -> None:
    error = assert_error(api.call(api.admin, "POST", "/api/feishu/bots", json=body), 400)
    assert field in error["message"]


def test_malformed_json_empty_body_and_patch_validation(api: Api) -> None:
    assert_error(api.call(api.admin, "POST", "/api/feishu/bots", data=b"{nope"), 400,
                 "invalid_json")
    assert_error(api.call(api.admin, "POST", "/api/feishu/bots"), 400)
    bot_id = api.create_bot(api.admin)
    path = f"/api/feishu/bots/{bot_id}"
    error = assert_error(api.call(api.admin, "PATCH", path, json={"appSecret": ""}), 400)
    assert "$.appSecret" in error["message"]
    error = assert_error(api.call(api.admin, "PATCH", path, json={"domain": "nope"}), 400)
    assert "domain" in error["message"]
    assert api.call(api.admin, "PATCH", path, json={}).status_code == 200
    assert api.fleet.calls == [("bot_added", bot_id)]


def test_text_that_is_not_utf8_or_holds_control_characters_is_400_naming_the_field(
        api: Api) -> None:
    """msgspec raises UnicodeDecodeError for such bytes in a string: once a 500."""
    bad = b'{"name":"\xff\xfe","appId":"cli_g","appSecret":"s"}'
    error = assert_error(api.call(api.admin, "POST", "/api/feishu/bots", data=bad), 400,
                         "invalid_field")
    assert "$.name" in error["message"]
    path = f"/api/feishu/bots/{api.create_bot(api.admin)}"
    error = assert_error(api.call(api.admin, "PATCH", path, data=b'{"name":"\xff"}'), 400)
    assert "$.name" in error["message"]
    error = assert_error(api.call(api.admin, "POST", "/api/users", data=b'{"name":"\xff"}'),
                         400)
    assert "$.name" in error["message"]
    for name in ("a\u0000b", "tab\there", "del\u007f", "c1\u0085"):
        response = api.call(api.admin, "POST", "/api/feishu/bots",
                             json=bot_body(name=name))
        assert "$.name" in assert_error(response, 400, "invalid_field")["message"]
        response = api.call(api.admin, "POST", "/api/users", json={"name": name})
        assert "$.name" in assert_error(response, 400, "invalid_field")["message"]
    assert api.call(api.admin, "POST", "/api/users", json={"name": "Zoë 测试"}).status_code == 201


def test_body_over_1_mib_is_413(api: Api) -> None:
    big = json.dumps(bot_body(name="x" * (1024 * 1024 + 10))).encode()
    assert_error(api.call(api.admin, "POST", "/api/feishu/bots", data=big), 413,
                 "payload_too_large")
    bot_id = api.create_bot(api.admin, useWebSocket=False)
    assert_error(api.call(api.anonymous, "POST", f"/webhook/feishu/{bot_id}", data=big), 413)


def test_one_bot_per_app_id_unless_an_admin_marks_it_shared(api: Api) -> None:
    first = api.create_bot(api.admin, "cli_dup")
    assert_error(api.call(api.admin, "POST", "/api/feishu/bots", json=bot_body("cli_dup")), 409,
                 "conflict")
    _, alice = api.new_user()
    clash = assert_error(api.call(alice, "POST", "/api/feishu/bots", json=bot_body("cli_dup")),
                         409, "conflict")
    assert "`$.appId`" in clash["message"] and first not in clash["message"]
    assert_error(api.call(alice, "POST", "/api/feishu/bots",
                          json=bot_body("cli_mine", shared=True)), 403)
    shared = api.call(api.admin, "PATCH", f"/api/feishu/bots/{first}", json={"shared": True})
    assert shared.status_code == 200 and shared.json()["shared"] is True, shared.text
    second = api.create_bot(alice, "cli_dup")
    assert api.call(alice, "GET", f"/api/feishu/bots/{second}").json()["shared"] is False
    other = api.create_bot(api.admin, "cli_other")
    clash = api.call(api.admin, "PATCH", f"/api/feishu/bots/{other}", json={"appId": "cli_dup"})
    assert_error(clash, 409)


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    assert_error(api.call(api.admin, "PUT", "/api/feishu/bots"), 405, "method_not_allowed")
    assert_error(api.call(api.admin, "GET", "/api/nothing"), 404, "not_found")
    assert_error(api.call(api.anonymous, "GET", "/nothing"), 404)


def test_logs_tail(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    path = f"/api/feishu/bots/{bot_id}/logs"
    empty = api.call(api.admin, "GET", path)
    assert empty.status_code == 200 and empty.text == ""
    log = api.paths.bot_log(bot_id)
    log.write_text("".join(f"line {i}\n" for i in range(50_000)))
    tail = api.call(api.admin, "GET", path, params={"tail": 3})
    assert tail.headers["Content-Type"].startswith("text/plain")
    assert tail.text == "line 49997\nline 49998\nline 49999\n"
    assert len(api.call(api.admin, "GET", path).text.splitlines()) == 100
    assert len(api.call(api.admin, "GET", path, params={"tail": 10000}).text.splitlines()) == 10000
    for bad in ("-1", "abc", "10001", "9" * 30):
        error = assert_error(api.call(api.admin, "GET", path, params={"tail": bad}), 400,
                             "invalid_field")
        assert "$.tail" in error["message"]


def test_send_message_success_no_worker_and_platform_failure(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    path = f"/api/feishu/bots/{bot_id}/messages"
    body = {"receiveId": "ou_1", "receiveIdType": "open_id", "text": "hello"}
    sent = api.call(api.admin, "POST", path, json=body)
    assert sent.status_code == 200
    generated = sent.json()["uuid"]
    assert sent.json() == {"success": True, "botId": bot_id, "messageId": "om_1",
                           "messageIds": ["om_1"], "uuid": generated}
    assert api.fleet.send_uuids[-1] == generated and 0 < len(generated) <= 50
    again = api.call(api.admin, "POST", path, json=body).json()["uuid"]
    assert again != generated, "a new request, a new server-generated uuid"
    given = api.call(api.admin, "POST", path, json={**body, "uuid": "client-key-1"})
    assert given.json()["uuid"] == api.fleet.send_uuids[-1] == "client-key-1"

    api.fleet.send_result = SendResult(bot_id=bot_id, incarnation=0, request_id="r", ok=False,
                                       error="bot has no running worker")
    assert_error(api.call(api.admin, "POST", path, json=body), 409, "not_running")
    api.fleet.send_result = SendResult(bot_id=bot_id, incarnation=3, request_id="r", ok=False,
                                       code=230002, error="bot not in chat")
    error = assert_error(api.call(api.admin, "POST", path, json=body), 502, "send_failed")
    assert "230002" in error["message"]
    api.fleet.send_result = failed_reply(
        Send(request_id="r", receive_id="ou_1", receive_id_type="open_id"), bot_id, NO_WORKER,
        "the worker did not answer in time", 504)
    error = assert_error(api.call(api.admin, "POST", path, json={**body, "uuid": "k-2"}), 504,
                         "outcome_unknown")
    assert "retry with uuid k-2" in error["message"], "a timeout is not 'not running'"
    bad = {**body, "receiveIdType": "phone"}
    assert "$.receiveIdType" in assert_error(api.call(api.admin, "POST", path, json=bad),
                                             400)["message"]


def test_dead_letters_listed_from_the_spool_and_retried(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    path = f"/api/feishu/bots/{bot_id}/dead-letters"
    assert api.call(api.admin, "GET", path).json() == {"botId": bot_id, "deadLetters": []}
    spool = Spool(api.paths.spool(bot_id))
    spool.add("ev_1", "oc_chat", "im.message.receive_v1", b"{}")
    spool.fail("ev_1", "handler blew up", None)
    spool.close()
    letters = api.call(api.admin, "GET", path).json()["deadLetters"]
    assert [(d["eventId"], d["lastError"]) for d in letters] == [("ev_1", "handler blew up")]

    retried = api.call(api.admin, "POST", f"{path}/ev_1/retry")
    assert retried.json() == {"success": True, "botId": bot_id, "eventId": "ev_1",
                              "status": "pending"}
    api.fleet.retry_result = RetryResult(bot_id=bot_id, incarnation=0, request_id="r",
                                         ok=False, error="no worker")
    assert_error(api.call(api.admin, "POST", f"{path}/ev_1/retry"), 409)
    api.fleet.retry_result = failed_reply(RetryDeadLetter(request_id="r", event_id="ev_1"),
                                          bot_id, NO_WORKER, "did not answer in time", 504)
    assert_error(api.call(api.admin, "POST", f"{path}/ev_1/retry"), 504, "outcome_unknown")
    api.fleet.retry_result = RetryResult(bot_id=bot_id, incarnation=4, request_id="r",
                                         ok=False, error="ev_9 is not a dead letter")
    assert_error(api.call(api.admin, "POST", f"{path}/ev_9/retry"), 404)


def test_webhook_is_public_and_passes_through(api: Api) -> None:
    bot_id = api.create_bot(api.admin, useWebSocket=False)
    response = api.call(api.anonymous, "POST", f"/webhook/feishu/{bot_id}", data=b'{"x":1}')
    assert response.status_code == 200 and response.json() == {"challenge": "c"}
    assert api.fleet.webhook_bodies == [b'{"x":1}']
    assert_error(api.call(api.anonymous, "POST", "/webhook/feishu/bot_000000000000"), 404)
    websocket_bot = api.create_bot(api.admin, "cli_ws")
    error = assert_error(api.call(api.anonymous, "POST", f"/webhook/feishu/{websocket_bot}",
                                  data=b'{"x":1}'), 409, "not_webhook_mode")
    assert "WebSocket mode" in error["message"]
    assert api.fleet.webhook_bodies == [b'{"x":1}'], "a WebSocket-mode bot's worker never sees it"


def test_webhook_deliveries_in_flight_are_bounded_per_bot(tmp_path: Path) -> None:
    """Past the bound a push is refused at once (503, Retry-After), other bots unaffected."""
    api = Api(tmp_path / "data", webhook_max_inflight=2)
    try:
        slow, other = (api.create_bot(api.admin, app_id, useWebSocket=False)
                       for app_id in ("cli_slow", "cli_other"))
        gate = api.fleet.webhook_gates[slow] = threading.Event()

        def push(bot_id: str) -> requests.Response:
            return api.call(api.anonymous, "POST", f"/webhook/feishu/{bot_id}", data=b"{}")

        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(push, slow) for _ in range(2)]
            wait_until(lambda: api.fleet.calls.count(("deliver_webhook", slow)) == 2, 5,
                       "two deliveries in flight")
            refused = push(slow)
            assert_error(refused, 503, "busy")
            assert refused.headers["Retry-After"] == "1"
            assert push(other).status_code == 200, "the bound is per bot"
            gate.set()
            assert [f.result(10).status_code for f in held] == [200, 200]
        assert push(slow).status_code == 200, "slots are given back"
        assert api.fleet.calls.count(("deliver_webhook", slow)) == 3, "the refused one never ran"
    finally:
        api.close()


def test_no_secret_in_any_response_or_the_registry_file(api: Api) -> None:
    _, alice = api.new_user()
    seen: list[bytes] = []

    def call(session, method, path, **kw):
        response = api.call(session, method, path, **kw)
        seen.append(response.content + json.dumps(dict(response.headers)).encode())
        return response

    bot_id = call(alice, "POST", "/api/feishu/bots", json=bot_body()).json()["id"]
    for method, path in [("GET", "/api/feishu/bots"), ("GET", "/api/feishu/ws/status"),
                         ("GET", "/metrics"), ("GET", "/api/openapi.json")]:
        call(alice if path.startswith("/api/") else api.anonymous, method, path)
    for method, route in BOT_ROUTES:
        call(alice, method, route.replace("{id}", bot_id).replace("{eventId}", "ev_1"),
             json=BODIES.get(method))
    call(api.admin, "GET", "/api/feishu/ws/status")
    call(api.admin, "GET", "/api/feishu/bots")
    api.fleet.fail_status = True
    call(api.admin, "GET", "/api/feishu/ws/status")
    call(api.admin, "DELETE", f"/api/feishu/bots/{bot_id}")

    stored = b"".join(p.read_bytes() for p in api.paths.root.glob("larkfleet.db*"))
    for secret in SECRETS:
        assert all(secret.encode() not in body for body in seen), secret
        assert secret.encode() not in stored, secret


def test_unexpected_errors_are_500_json_without_traceback(api: Api, caplog) -> None:
    api.create_bot(api.admin)
    api.fleet.fail_status = True
    response = api.call(api.admin, "GET", "/api/feishu/ws/status")
    error = assert_error(response, 500, "internal_error")
    assert "Traceback" not in response.text and "exploded" not in error["message"]


def test_a_webhook_bot_has_no_connection_to_steer(api: Api) -> None:
    bot_id = api.create_bot(api.admin, useWebSocket=False)
    for action in ("connect", "disconnect"):
        body = assert_error(
            api.call(api.admin, "POST", f"/api/feishu/bots/{bot_id}/ws/{action}"),
            409,
            "webhook_mode",
        )
        assert "useWebSocket" in body["message"]
