"""Authentication and users: 401 without a valid token, admin-only user routes, revocation."""

import pytest

from tests.apikit import Api, api_fixture, assert_error  # noqa: F401

PROTECTED = [
    ("GET", "/api/feishu/bots"),
    ("POST", "/api/feishu/bots"),
    ("GET", "/api/feishu/ws/status"),
    ("GET", "/api/feishu/bots/bot_000000000000"),
    ("POST", "/api/users"),
    ("GET", "/api/nothing-here"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_401_without_or_with_a_bad_token(api: Api, method: str, path: str) -> None:
    assert_error(api.call(api.anonymous, method, path), 401, "unauthorized")
    assert_error(api.call(api.session("wrong-token"), method, path), 401, "unauthorized")
    basic = {"Authorization": f"Basic {api.admin_token}"}
    assert_error(api.call(api.anonymous, method, path, headers=basic), 401)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/openapi.json"])
def test_ops_routes_are_public(api: Api, path: str) -> None:
    assert api.call(api.anonymous, "GET", path).status_code == 200


def test_admin_creates_a_user_whose_token_works_once_shown(api: Api) -> None:
    response = api.call(api.admin, "POST", "/api/users", json={"name": "alice"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "token"} and body["name"] == "alice"
    alice = api.session(body["token"])
    assert api.call(alice, "GET", "/api/feishu/bots").json() == {"bots": []}
    listed = api.call(api.admin, "GET", "/api/users").json()["users"]
    assert {u["name"] for u in listed} == {"admin", "alice"}
    assert all("token" not in u for u in listed)
    assert body["token"].encode() not in api.paths.registry.read_bytes()


def test_user_routes_are_admin_only(api: Api) -> None:
    user_id, alice = api.new_user()
    assert_error(api.call(alice, "POST", "/api/users", json={"name": "eve"}), 403, "forbidden")
    assert_error(api.call(alice, "GET", "/api/users"), 403)
    assert_error(api.call(alice, "DELETE", f"/api/users/{user_id}"), 403)
    assert_error(api.call(alice, "POST", f"/api/users/{user_id}/tokens"), 403)


def test_revoked_and_deleted_users_get_401(api: Api) -> None:
    user_id, alice = api.new_user()
    fresh = api.call(api.admin, "POST", f"/api/users/{user_id}/tokens")
    assert fresh.status_code == 201
    revoked = api.call(api.admin, "DELETE", f"/api/users/{user_id}/tokens")
    assert revoked.json() == {"success": True, "userId": user_id, "revoked": 2}
    assert_error(api.call(alice, "GET", "/api/feishu/bots"), 401)
    assert_error(api.call(api.session(fresh.json()["token"]), "GET", "/api/feishu/bots"), 401)

    again = api.session(api.call(api.admin, "POST", f"/api/users/{user_id}/tokens").json()["token"])
    bot_id = api.create_bot(again)
    assert_error(api.call(api.admin, "DELETE", f"/api/users/{user_id}"), 409, "conflict")
    assert api.call(again, "DELETE", f"/api/feishu/bots/{bot_id}").status_code == 200
    deleted = api.call(api.admin, "DELETE", f"/api/users/{user_id}")
    assert deleted.json() == {"success": True, "userId": user_id}
    assert_error(api.call(again, "GET", "/api/feishu/bots"), 401)
    assert_error(api.call(api.admin, "DELETE", f"/api/users/{user_id}"), 404, "not_found")


def test_admin_cannot_lock_itself_out(api: Api) -> None:
    admin_id = api.call(api.admin, "GET", "/api/users").json()["users"][0]["id"]
    assert_error(api.call(api.admin, "DELETE", f"/api/users/{admin_id}/tokens"), 409)
    assert_error(api.call(api.admin, "DELETE", f"/api/users/{admin_id}"), 409)


def test_create_user_validation(api: Api) -> None:
    error = assert_error(api.call(api.admin, "POST", "/api/users", json={}), 400)
    assert "name" in error["message"]
    error = assert_error(api.call(api.admin, "POST", "/api/users", json={"name": ""}), 400)
    assert "$.name" in error["message"]


def test_a_path_outside_the_api_needs_no_token_and_is_a_plain_404(api: Api) -> None:
    assert_error(api.call(api.anonymous, "GET", "/nothing-here"), 404)


def test_another_owners_bot_answers_404_exactly_like_a_missing_one(api: Api) -> None:
    _, alice = api.new_user("alice")
    _, bob = api.new_user("bob")
    bot_id = api.create_bot(alice, "cli_alice_bot")
    theirs = assert_error(api.call(bob, "GET", f"/api/feishu/bots/{bot_id}"), 404, "not_found")
    missing = assert_error(api.call(bob, "GET", "/api/feishu/bots/bot_000000000000"), 404,
                           "not_found")
    assert theirs["message"] == f"bot {bot_id} not found"
    assert missing["message"] == "bot bot_000000000000 not found"
    for path in (f"/api/feishu/bots/{bot_id}/ws/status", f"/api/feishu/bots/{bot_id}/logs"):
        status = assert_error(api.call(bob, "GET", path), 404, "not_found")
        assert status["message"] == f"bot {bot_id} not found", path
        assert api.call(alice, "GET", path).status_code == 200, path
    assert api.call(bob, "GET", "/api/feishu/bots").json() == {"bots": []}
    assert api.call(alice, "GET", f"/api/feishu/bots/{bot_id}").status_code == 200
    assert api.call(api.admin, "GET", f"/api/feishu/bots/{bot_id}").status_code == 200
    assert [b["id"] for b in api.call(api.admin, "GET", "/api/feishu/bots").json()["bots"]] == [
        bot_id]


def test_audit_query_parameters_are_named_when_bad(api: Api) -> None:
    huge = "9" * 30  # over SQLite's 64-bit INTEGER: an OverflowError (500) once
    for query, field in (("before=abc", "$.before"), ("limit=x", "$.limit"),
                         ("limit=0", "$.limit"), (f"before={huge}", "$.before"),
                         ("before=0", "$.before"), (f"limit={huge}", "$.limit")):
        error = assert_error(api.call(api.admin, "GET", f"/api/audit?{query}"), 400,
                             "invalid_field")
        assert field in error["message"], query
