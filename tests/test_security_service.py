"""Security controls through a real `larkfleet serve` and the simulator (issue 17).

One guarded service (python_modules = "json", a 600 s webhook window: the session's
shared service) serves the create/patch checks; `test_existing_rows_*` seeds the registry with rows
the API now refuses (as an older version or a changed DNS answer leaves them)
and proves the worker refuses them at run time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet, InvalidToken

from shared import exitcodes
from shared.botconfig import BotConfig, ForwardHandler, PythonHandler
from shared.paths import DataPaths
from store import open_store
from tests.fixtures.service import (
    LARKFLEET,
    SHARED_SECURITY,
    Service,
    free_port,
    wait_until,
)
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(120)

TOKEN = "verification-token-sec"
KEY = "encrypt-key-sec"
MAX_AGE = 600


@pytest.fixture(scope="module")
def guarded(shared_service: Service) -> Service:
    """The session's shared service: its security table (tests/fixtures/service.py
    SHARED_SECURITY) is this module's guard, python_modules = "json" and a 600 s window."""
    assert {"LARKFLEET_PYTHON_MODULES": "json",
                               "LARKFLEET_WEBHOOK_MAX_AGE": str(MAX_AGE)} == SHARED_SECURITY
    return shared_service


def new_user(service: Service, name: str) -> requests.Session:
    response = service.request("POST", "/api/users", json={"name": name})
    assert response.status_code == 201, response.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return session


def create(service: Service, session: requests.Session, app_id: str, **fields) -> requests.Response:
    body = {"name": app_id, "appId": app_id, "appSecret": "s3cret-value", **fields}
    return session.post(f"{service.url}/api/feishu/bots", json=body, timeout=30)


def refused(response: requests.Response, field: str, *words: str) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert f"`{field}`" in message, message
    assert all(word in message for word in words), message


# -- 1. webhook-mode bots must authenticate pushes -------------------------------------


def test_webhook_bot_without_token_or_key_is_refused(guarded: Service) -> None:
    admin = guarded.http
    refused(create(guarded, admin, "cli_wh_none", useWebSocket=False), "$.verificationToken",
            "encryptKey")
    made = create(guarded, admin, "cli_wh_ws")
    assert made.status_code == 201, made.text
    bot_id = made.json()["id"]
    patch = admin.patch(f"{guarded.url}/api/feishu/bots/{bot_id}",
                        json={"useWebSocket": False}, timeout=30)
    refused(patch, "$.verificationToken")
    ok = admin.patch(f"{guarded.url}/api/feishu/bots/{bot_id}",
                     json={"useWebSocket": False, "verificationToken": TOKEN}, timeout=30)
    assert ok.status_code == 200 and ok.json()["hasVerificationToken"] is True, ok.text
    cleared = admin.patch(f"{guarded.url}/api/feishu/bots/{bot_id}",
                          json={"verificationToken": ""}, timeout=30)
    refused(cleared, "$.verificationToken")


# -- 7. a signed push outside the time window is a replay --------------------------------


def test_signed_push_with_an_old_timestamp_is_refused(
    guarded: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(verification_token=TOKEN, encrypt_key=KEY)
    bot_id = guarded.create_bot(app.app_id, app.app_secret, app.url, useWebSocket=False,
                                verificationToken=TOKEN, encryptKey=KEY)
    url = f"{guarded.url}/webhook/feishu/{bot_id}"
    three_days_ago = int(time.time()) - 3 * 24 * 3600
    for stale_at in (three_days_ago, int(time.time()) - MAX_AGE - 300,
                     int(time.time()) + MAX_AGE + 300):
        stale = app.client.webhook(app.app_id, url, text="replayed", timestamp=stale_at)
        assert stale["status"] == 401, stale
        assert json.loads(stale["body"])["error"]["code"] == "stale_timestamp"
    fresh = app.client.webhook(app.app_id, url, text="fresh",
                               timestamp=int(time.time()) - MAX_AGE // 2)
    assert fresh["status"] == 200, fresh
    wait_until(lambda: [m for m in app.sent() if m["text"] == "fresh"], 15, "the reply")
    assert [m["text"] for m in app.sent()] == ["fresh"], "the replays were never answered"


# -- 2. python targets are the operator's code ------------------------------------------


def test_python_targets_only_under_the_operators_prefixes(guarded: Service) -> None:
    alice = new_user(guarded, "alice-py")

    def python(session: requests.Session, app_id: str, target: str) -> requests.Response:
        return create(guarded, session, app_id, handler={"kind": "python", "target": target})

    refused(python(alice, "cli_py1", "os:getcwd"), "$.handler.target", "'os'", "json")
    refused(python(alice, "cli_py2", "jsonschema_x:run"), "$.handler.target", "not under")
    refused(python(alice, "cli_py3", "json:no_such_function"), "$.handler.target",
            "no_such_function")
    refused(python(alice, "cli_py4", "json"), "$.handler.target", "module:function")
    assert python(alice, "cli_py5", "json:dumps").status_code == 201
    refused(python(guarded.http, "cli_py6", "no_such_module_xyz:f"), "$.handler.target",
            "no_such_module_xyz")
    assert python(guarded.http, "cli_py7", "os.path:basename").status_code == 201

    echo = create(guarded, alice, "cli_py8")
    assert echo.status_code == 201
    patched = alice.patch(f"{guarded.url}/api/feishu/bots/{echo.json()['id']}",
                          json={"handler": {"kind": "python", "target": "subprocess:run"}},
                          timeout=30)
    refused(patched, "$.handler.target", "subprocess")


# -- 3. handler URLs follow the operator's URL policy -----------------------------------


def test_handler_urls_refused_at_create_and_patch(guarded: Service) -> None:
    bob = new_user(guarded, "bob-url")
    own_api = f"http://127.0.0.1:{guarded.port}/api/users"

    def forward(session: requests.Session, app_id: str, url: str) -> requests.Response:
        return create(guarded, session, app_id, handler={"kind": "forward", "url": url})

    refused(forward(bob, "cli_u1", "http://169.254.169.254/latest/meta-data/"),
            "$.handler.url", "metadata")
    refused(forward(bob, "cli_u2", "http://10.0.0.7:8080/hook"), "$.handler.url", "public")
    refused(forward(bob, "cli_u3", "http://127.0.0.1:8080/hook"), "$.handler.url")
    refused(forward(bob, "cli_u4", "http://[::ffff:169.254.169.254]/"), "$.handler.url")
    refused(forward(guarded.http, "cli_u5", own_api), "$.handler.url", "own API")
    refused(forward(guarded.http, "cli_u6", f"http://localhost:{guarded.port}/"),
            "$.handler.url", "own API")
    refused(forward(guarded.http, "cli_u7", "http://169.254.169.254/"), "$.handler.url")
    openai = create(guarded, bob, "cli_u8", handler={
        "kind": "openai", "baseUrl": "http://100.100.100.200/v1", "model": "m"})
    refused(openai, "$.handler.baseUrl", "metadata")
    assert forward(bob, "cli_u9", "http://93.184.215.14/hook").status_code == 201
    assert forward(guarded.http, "cli_u10", "http://127.0.0.1:8080/hook").status_code == 201


# -- rows the API refuses today, left by an older version or a changed DNS answer -------


class _Hook(BaseHTTPRequestHandler):
    hits: list[bytes] = []

    def do_POST(self) -> None:
        self.hits.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = b'{"text": "leaked"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_hook() -> Iterator[tuple[int, list[bytes]]]:
    """An internal HTTP endpoint on loopback that answers every POST (and records it)."""
    hits: list[bytes] = []
    handler = type("Hook", (_Hook,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def seed(data_dir: Path, apps: dict[str, SimApp], hook_url: str) -> dict[str, str]:
    """Rows written straight into the registry, as the old code accepted them."""
    paths = DataPaths(data_dir)
    paths.ensure()
    registry = open_store(paths)
    try:
        admin = registry.list_users()[0].id
        tenant = registry.create_user("tenant")[0].id

        def bot(owner: str, app: SimApp, **fields: Any) -> str:
            config = BotConfig(id="", name=app.app_id, app_id=app.app_id,
                               app_secret=app.app_secret, domain=app.url, **fields)
            return registry.create_bot(owner, config).config.id

        return {
            "webhook": bot(admin, apps["webhook"], use_websocket=False),
            "forward": bot(tenant, apps["forward"],
                           handler=ForwardHandler(url=hook_url, secret="hook-secret-1")),
            "python": bot(tenant, apps["python"], handler=PythonHandler(target="os:getcwd")),
        }
    finally:
        registry.close()


FORGED = {
    "schema": "2.0",
    "header": {"event_id": "ev_forged", "event_type": "im.message.receive_v1"},
    "event": {"message": {"chat_id": "oc_1", "message_id": "om_1", "message_type": "text",
                          "content": "{\"text\": \"forged\"}"}},
}


def test_existing_rows_are_refused_at_run_time(
    tmp_path: Path, sim_app: Callable[..., SimApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LARKFLEET_SECRET_KEY", raising=False)
    monkeypatch.delenv("LARKFLEET_ADMIN_TOKEN", raising=False)
    apps = {"webhook": sim_app(verification_token=TOKEN), "forward": sim_app(),
            "python": sim_app()}
    with local_hook() as (hook_port, hook_hits):
        bots = seed(tmp_path / "data", apps, f"http://localhost:{hook_port}/hook")
        service = Service(tmp_path / "data").start()
        try:
            webhook = bots["webhook"]
            url = f"{service.url}/webhook/feishu/{webhook}"
            status = service.wait_state(webhook, "error")
            assert "verificationToken" in status["error"]
            forged = requests.post(url, json=FORGED, timeout=10)
            assert forged.status_code == 401, forged.text
            assert forged.json()["error"]["code"] == "webhook_unauthenticated"

            patched = service.request("PATCH", f"/api/feishu/bots/{webhook}",
                                      json={"verificationToken": TOKEN})
            assert patched.status_code == 200, patched.text
            service.wait_status(webhook, lambda s: s["state"] == "webhook" and not s["error"],
                                30, "served, the error gone")
            pushed = apps["webhook"].client.webhook(apps["webhook"].app_id, url, text="signed")
            assert pushed["status"] == 200, pushed
            assert requests.post(url, json=FORGED, timeout=10).status_code == 401

            for key in ("forward", "python"):
                service.connect(bots[key])
                service.wait_state(bots[key], "connected")
                apps[key].push("hello")
            for key, reason in (("forward", "URL policy"), ("python", "admin-only")):
                dead = wait_until(lambda b=bots[key]: dead_letters(service, b), 30,
                                  f"{key}: a dead letter")
                assert reason in dead[0]["lastError"], dead
                assert apps[key].sent() == []
            assert hook_hits == [], "the refused address was never called"
        finally:
            service.stop()


def dead_letters(service: Service, bot_id: str) -> list[dict[str, Any]] | None:
    response = service.request("GET", f"/api/feishu/bots/{bot_id}/dead-letters")
    assert response.status_code == 200, response.text
    return response.json()["deadLetters"] or None


# -- 5. weak admin tokens -----------------------------------------------------------------


@pytest.mark.parametrize("token", ["x", "REPLACE-WITH-A-LONG-RANDOM-TOKEN"])
def test_weak_admin_token_refused_in_one_line(tmp_path: Path, token: str) -> None:
    """What `serve` does with a weak token; which tokens are weak is
    test_security_policy.py::test_admin_token_weakness (a table, no process per row)."""
    env = {**os.environ, "LARKFLEET_ADMIN_TOKEN": token}
    done = subprocess.run(
        [LARKFLEET, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == exitcodes.SERVE_WEAK_ADMIN_TOKEN, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "LARKFLEET_ADMIN_TOKEN" in lines[0], done.stderr
    assert len(token) < 4 or token not in done.stderr
    assert not (tmp_path / "data").exists(), "refused before touching the data directory"


def test_example_environment_ships_no_usable_token() -> None:
    example = Path(__file__).parents[1] / "deploy" / "larkfleet.env.example"
    values = [line.partition("=")[2].strip() for line in example.read_text().splitlines()
              if line.startswith("LARKFLEET_ADMIN_TOKEN=")]
    assert values == [""], values


# -- 6. the data directory is the service user's alone -----------------------------------


def test_data_directory_private_whatever_the_umask(
    tmp_path: Path, sim_app: Callable[..., SimApp]
) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True, mode=0o755)
    old_log = data / "logs" / "supervisor.log.1"
    old_log.write_text("a rotated log from an older version\n")
    old_log.chmod(0o644)
    previous = os.umask(0o022)
    try:
        service = Service(data).start()
    finally:
        os.umask(previous)
    try:
        app = sim_app()
        bot_id = service.create_bot(app.app_id, app.app_secret, app.url)
        service.connect(bot_id)
        service.wait_state(bot_id, "connected")
        pushed = app.push("private please")
        wait_until(lambda: [m for m in app.sent() if m["replyTo"] == pushed["messageId"]], 15,
                   "the reply")
        open_to_others = [
            (str(path.relative_to(data)), oct(stat.S_IMODE(path.lstat().st_mode)))
            for path in [data, *data.rglob("*")]
            if path.name != "serve.out" and stat.S_IMODE(path.lstat().st_mode) & 0o077
        ]
        assert open_to_others == []
        for path in (data, data / "logs", data / "bots", data / "run"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    finally:
        service.stop()


# -- 4. one bot per appId ------------------------------------------------------------------


def test_one_bot_per_app_id_across_owners(guarded: Service) -> None:
    carol = new_user(guarded, "carol-app")
    first = create(guarded, guarded.http, "cli_one_app")
    assert first.status_code == 201, first.text
    clash = create(guarded, carol, "cli_one_app")
    assert clash.status_code == 409, clash.text
    assert "`$.appId`" in clash.json()["error"]["message"]
    assert create(guarded, carol, "cli_one_app_b", shared=True).status_code == 403
    marked = guarded.request("PATCH", f"/api/feishu/bots/{first.json()['id']}",
                             json={"shared": True})
    assert marked.status_code == 200 and marked.json()["shared"] is True
    assert create(guarded, carol, "cli_one_app").status_code == 201


# -- tokens: scopes, expiry, last use, list and revoke one's own -------------------------


def test_viewer_tokens_read_and_never_change(guarded: Service) -> None:
    dave_id = guarded.request("POST", "/api/users", json={"name": "dave-tokens"}).json()
    dave = requests.Session()
    dave.headers["Authorization"] = f"Bearer {dave_id['token']}"
    bot = create(guarded, dave, "cli_viewer_bot")
    assert bot.status_code == 201
    bot_id = bot.json()["id"]
    tokens = f"{guarded.url}/api/users/{dave_id['id']}/tokens"
    assert dave.post(tokens, json={"scope": "owner"}, timeout=10).status_code == 403
    issued = dave.post(tokens, json={"scope": "viewer"}, timeout=10)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert set(body) >= {"id", "token", "scope", "expiresAt"} and body["scope"] == "viewer"
    viewer = requests.Session()
    viewer.headers["Authorization"] = f"Bearer {body['token']}"
    for path in ("/api/feishu/bots", f"/api/feishu/bots/{bot_id}/ws/status",
                 f"/api/feishu/bots/{bot_id}/logs?tail=5", "/api/feishu/ws/status"):
        assert viewer.get(f"{guarded.url}{path}", timeout=10).status_code == 200, path
    for method, path, payload in (
        ("POST", f"/api/feishu/bots/{bot_id}/ws/connect", None),
        ("PATCH", f"/api/feishu/bots/{bot_id}", {"name": "x"}),
        ("DELETE", f"/api/feishu/bots/{bot_id}", None),
        ("POST", "/api/feishu/bots", {"name": "v", "appId": "cli_v", "appSecret": "s"}),
        ("POST", f"/api/feishu/bots/{bot_id}/messages",
         {"receiveId": "ou_1", "receiveIdType": "open_id", "text": "hi"}),
    ):
        response = viewer.request(method, f"{guarded.url}{path}", json=payload, timeout=10)
        assert response.status_code == 403, (method, path, response.text)

    listed = dave.get(tokens, timeout=10).json()["tokens"]
    mine = {t["id"]: t for t in listed}
    assert mine[body["id"]]["scope"] == "viewer" and mine[body["id"]]["lastUsedAt"]
    assert all("token" not in t for t in listed)
    revoked = dave.delete(f"{tokens}/{body['id']}", timeout=10)
    assert revoked.status_code == 200, revoked.text
    assert viewer.get(f"{guarded.url}/api/feishu/bots", timeout=10).status_code == 401

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    short = guarded.request("POST", f"/api/users/{dave_id['id']}/tokens",
                            json={"expiresAt": soon}).json()
    brief = requests.Session()
    brief.headers["Authorization"] = f"Bearer {short['token']}"
    assert brief.get(f"{guarded.url}/api/feishu/bots", timeout=10).status_code == 200
    wait_until(lambda: brief.get(f"{guarded.url}/api/feishu/bots", timeout=10).status_code
               == 401, 10, "the token to expire")
    past = guarded.request("POST", f"/api/users/{dave_id['id']}/tokens",
                           json={"expiresAt": "2020-01-01T00:00:00Z"})
    refused(past, "$.expiresAt")


# -- audit ------------------------------------------------------------------------------------


def test_every_change_is_audited_without_secrets(guarded: Service) -> None:
    erin = new_user(guarded, "erin-audit")
    made = create(guarded, erin, "cli_audited", appSecret="audit-secret-value-1")
    bot_id = made.json()["id"]
    erin.post(f"{guarded.url}/api/feishu/bots/{bot_id}/ws/disconnect", timeout=30)
    create(guarded, erin, "cli_audited")  # a refusal is recorded too
    assert erin.get(f"{guarded.url}/api/audit", timeout=10).status_code == 403
    page = guarded.request("GET", "/api/audit?limit=3").json()
    assert len(page["entries"]) == 3 and page["next"] is not None
    entries = guarded.request("GET", "/api/audit?limit=1000").json()["entries"]
    assert entries == sorted(entries, key=lambda e: e["id"], reverse=True)
    mine = [(e["action"], e["target"], e["outcome"]) for e in entries
            if e["target"].startswith(bot_id) or (e["action"] == "POST /api/feishu/bots"
            and e["outcome"] == "refused 409")]
    assert ("POST /api/feishu/bots", bot_id, "ok") in mine
    assert ("POST /api/feishu/bots/{id}/ws/disconnect", bot_id, "ok") in mine
    assert any(outcome == "refused 409" for *_, outcome in mine)
    assert all(set(e) == {"id", "at", "actor", "action", "target", "outcome"} for e in entries)
    assert "audit-secret-value-1" not in json.dumps(entries)
    log = (guarded.data_dir / "logs" / "supervisor.log").read_text()
    assert f"target={bot_id} outcome=ok" in log and "audit-secret-value-1" not in log


# -- secret-key rotation while the service runs ------------------------------------------


def test_rotate_key_while_serving(
    tmp_path: Path, sim_app: Callable[..., SimApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LARKFLEET_SECRET_KEY", raising=False)
    data = tmp_path / "data"
    service = Service(data).start()
    try:
        app = sim_app()
        bot_id = service.create_bot(app.app_id, app.app_secret, app.url, verificationToken=TOKEN,
                                    handler={"kind": "forward", "url": "http://127.0.0.1:9/h",
                                             "secret": "rotating-handler-secret"})
        service.connect(bot_id)
        service.wait_state(bot_id, "connected")
        old_key = (data / "secret.key").read_text().strip()
        env = {k: v for k, v in os.environ.items() if k != "LARKFLEET_SECRET_KEY"}
        done = subprocess.run([LARKFLEET, "rotate-key", "--data-dir", str(data)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        new_key = (data / "secret.key").read_text().strip()
        assert new_key != old_key and "\n" not in new_key
        [retired] = data.glob("secret.key.retired-*")
        assert retired.read_text().strip() == old_key
        assert stat.S_IMODE(retired.stat().st_mode) == 0o600

        stored = sealed_values(data / "larkfleet.db")
        assert stored, "bot secrets are stored sealed"
        new, old = Fernet(new_key.encode()), Fernet(old_key.encode())
        for value in stored:
            new.decrypt(value.encode())
            with pytest.raises(InvalidToken):
                old.decrypt(value.encode())

        assert service.status(bot_id)["state"] == "connected", "no restart, no downtime"
        assert service.request("GET", f"/api/feishu/bots/{bot_id}").status_code == 200
        patched = service.request("PATCH", f"/api/feishu/bots/{bot_id}",
                                  json={"name": "after rotation"})
        assert patched.status_code == 200, patched.text
        service.wait_state(bot_id, "connected")
        other = sim_app()
        service.create_bot(other.app_id, other.app_secret, other.url)
        for value in sealed_values(data / "larkfleet.db"):
            new.decrypt(value.encode())
    finally:
        assert service.stop() == 0
    restarted = Service(data).start()
    try:
        assert restarted.status(bot_id)["state"] in ("connecting", "connected")
        restarted.wait_state(bot_id, "connected")
    finally:
        restarted.stop()


def sealed_values(db: Path) -> list[str]:
    """Every sealed value in the registry: bot secrets, handler secrets, the key canary."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT app_secret, verification_token, handler FROM bots").fetchall()
        canary = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchall()
    values = [row[0] for row in rows] + [row[1] for row in rows if row[1]]
    values += [json.loads(row[2]).get("secret", "") for row in rows]
    return [v for v in values if v] + [row[0] for row in canary]
