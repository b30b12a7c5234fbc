"""The API against the REAL service: real workers' states, the platform's real error texts.

tests/test_api_*.py run the API over a FakeFleet (fast, every route and error shape); here
the same promises are checked where a fake cannot lie: PATCH restarts a real worker with the
new config, a bot moves between WebSocket and webhook mode, no response of the running
service holds a secret (statuses carry what workers and the platform said), and generated
requests never make it answer 500.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.app import all_routes
from tests.fixtures.events import EventFleet
from tests.fixtures.service import ADMIN_TOKEN, Service, wait_until
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(180)

EXAMPLES = 3
"""Generated requests per operation against the real service: bounded, so the run stays short;
the FakeFleet fuzz (tests/test_api_fuzz.py) runs more."""
FORWARD_SECRET = "forward-secret-service-api-77"
TOKEN = "verification-token-service-api"
KEY = "encrypt-key-service-api-0000"


@pytest.fixture(scope="module")
def fleet(event_fleet: EventFleet) -> Service:
    """The session's event service (tests/fixtures/events.py; restarts from 0.2 s)."""
    return event_fleet.service


def connected(fleet: Service, app: SimApp, **fields: object) -> tuple[str, dict]:
    bot_id = fleet.create_bot(app.app_id, app.app_secret, app.url, **fields)
    fleet.connect(bot_id)
    return bot_id, fleet.wait_state(bot_id, "connected")


def patch(fleet: Service, bot_id: str, body: dict) -> dict:
    response = fleet.request("PATCH", f"/api/feishu/bots/{bot_id}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_patch_restarts_the_worker_with_the_new_config_and_moves_modes(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app(verification_token=TOKEN)
    bot_id, before = connected(fleet, app)

    patch(fleet, bot_id, {"useWebSocket": False, "verificationToken": TOKEN})
    webhook = fleet.wait_status(bot_id, lambda s: s["state"] == "webhook" and
                                s["pid"] not in (None, before["pid"]), 20, "webhook mode")
    wait_until(lambda: app.info()["connections"] == 0, 5, "the long connection closed")
    url = f"{fleet.url}/webhook/feishu/{bot_id}"
    pushed = app.client.webhook(app.app_id, url, text="by webhook")
    assert pushed["status"] == 200, pushed
    wait_until(lambda: [s for s in app.sent() if s["replyTo"] == pushed["messageId"]], 10,
               "the webhook event answered")

    patch(fleet, bot_id, {"useWebSocket": True})
    back = fleet.wait_status(bot_id, lambda s: s["state"] == "connected" and
                             s["pid"] not in (None, webhook["pid"]), 20, "WebSocket again")
    assert app.info()["handshakes"] == 2 and app.info()["connections"] == 1

    patch(fleet, bot_id, {"appSecret": "a-wrong-secret-after-patch"})
    refused = fleet.wait_state(bot_id, "error")
    assert refused["errorCode"] == 10003, "the restarted worker used the new secret"
    assert refused["pid"] != back["pid"]
    assert app.info()["connections"] == 0

    patch(fleet, bot_id, {"useWebSocket": False, "verificationToken": TOKEN})
    fleet.wait_status(bot_id, lambda s: s["state"] == "webhook" and s["pid"] is not None
                      and s["error"] is None, 20, "the bot in error served in webhook mode")
    pushed = app.client.webhook(app.app_id, url, text="after the error")
    assert pushed["status"] == 200, pushed


def responses_of(fleet: Service, bot_ids: list[str]) -> list[bytes]:
    """Every read and per-bot route of the running service, as raw bytes with headers."""
    bodies: list[bytes] = []

    def call(method: str, path: str, **kwargs: object) -> None:
        response = fleet.request(method, path, **kwargs)
        bodies.append(response.content + json.dumps(dict(response.headers)).encode())

    for path in ("/api/feishu/bots", "/api/feishu/ws/status", "/metrics", "/api/openapi.json",
                 "/api/users", "/api/audit?limit=200", "/healthz", "/readyz"):
        call("GET", path)
    routes = [(r.method, r.path) for r in all_routes() if "{id}" in r.path and "/bots/" in r.path]
    for bot_id in bot_ids:
        for method, route in routes:
            if method in ("GET",):
                call(method, route.replace("{id}", bot_id).replace("{eventId}", "ev_none"))
        call("GET", f"/api/feishu/bots/{bot_id}/logs?tail=500")
    return bodies


def test_no_response_of_the_running_service_holds_a_secret(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    """Bots with every kind of secret, one connected, one refused by the platform with its
    secret in the refusal text, one in webhook mode: nothing the API answers holds one."""
    ws_app, refused_app, hook_app = sim_app(), sim_app(), sim_app(verification_token=TOKEN,
                                                                 encrypt_key=KEY)
    handler = {"kind": "forward", "url": "http://127.0.0.1:9/hook", "secret": FORWARD_SECRET}
    live, _ = connected(fleet, ws_app, handler=handler, verificationToken=TOKEN, encryptKey=KEY)
    refused_app.faults(endpointError={"code": 10003,
                                      "msg": f"invalid app_secret {refused_app.app_secret}"})
    refused = fleet.create_bot(refused_app.app_id, refused_app.app_secret, refused_app.url)
    fleet.connect(refused)
    fleet.wait_state(refused, "error")
    hook = fleet.create_bot(hook_app.app_id, hook_app.app_secret, hook_app.url,
                            useWebSocket=False, verificationToken=TOKEN, encryptKey=KEY)
    fleet.wait_state(hook, "webhook")
    assert hook_app.client.webhook(hook_app.app_id, f"{fleet.url}/webhook/feishu/{hook}",
                                   text="hello")["status"] == 200

    bodies = responses_of(fleet, [live, refused, hook])
    secrets = [ws_app.app_secret, refused_app.app_secret, hook_app.app_secret, FORWARD_SECRET,
               TOKEN, KEY, ADMIN_TOKEN]
    for secret in secrets:
        leaks = [body[:300] for body in bodies if secret.encode() in body]
        assert not leaks, f"{secret} in {leaks}"
    assert any(b"invalid app_secret ***" in body for body in bodies), "the refusal is shown"


def test_no_generated_request_makes_the_running_service_answer_500(
    fleet: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    connected(fleet, app)
    spec = fleet.request("GET", "/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        if operation.path == "/api/feishu/events":
            continue  # a stream that ends only with the service: tests/test_api_events.py

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
            case.call_and_validate(base_url=fleet.url, checks=[not_a_server_error])

        check()
    assert fleet.request("GET", "/readyz").status_code == 200


def test_the_data_dir_holds_no_secret_in_plain_text(fleet: Service) -> None:
    stored = b"".join(p.read_bytes() for p in Path(fleet.data_dir).glob("larkfleet.db*"))
    for secret in (FORWARD_SECRET, TOKEN, KEY):
        assert secret.encode() not in stored
