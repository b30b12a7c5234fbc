"""The CLI's thin clients against a real service: table for people, JSON for scripts."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.service import ADMIN_TOKEN, Service
from tests.fixtures.sim import SimApp


@pytest.fixture
def service(shared_service: Service) -> Service:
    """Every CLI test adds its own bots and users: the session's shared service serves them."""
    return shared_service

LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))


def cli(
    service: Service, *argv: str, token: str | None = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARKFLEET_")}
    if token is not None:
        env["LARKFLEET_TOKEN"] = token
    command = [LARKFLEET, *argv, "--url", service.url, "--data-dir", str(service.data_dir)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_bots_add_connect_status_logs_disconnect(
    service: Service, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    added = cli(service, "bots", "add", "--name", "cli-bot", "--app-id", app.app_id,
                "--app-secret", app.app_secret, "--domain", app.url, "--json")
    assert added.returncode == 0, added.stderr
    bot_id = json.loads(added.stdout)["id"]
    assert app.app_secret not in added.stdout

    listing = cli(service, "bots", "list")
    assert bot_id in listing.stdout and "cli-bot" in listing.stdout

    assert cli(service, "connect", bot_id).stdout.strip() == f"{bot_id}: connecting"
    service.wait_state(bot_id, "connected")

    table = cli(service, "status")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:2] == ["botId", "state"]
    assert any(row.split()[:2] == [bot_id, "connected"] for row in rows)
    assert json.loads(cli(service, "status", bot_id, "--json").stdout)["state"] == "connected"

    logs = cli(service, "logs", bot_id, "-n", "50")
    assert logs.returncode == 0 and "INFO" in logs.stdout

    assert cli(service, "disconnect", bot_id).stdout.strip() == f"{bot_id}: disconnected"


def test_errors_are_one_line_and_exit_non_zero(service: Service) -> None:
    missing = cli(service, "status", "bot_000000000000")
    assert missing.returncode == 1
    assert missing.stderr.startswith("larkfleet: HTTP 404")
    refused = cli(service, "status", token="not-a-token")
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr


def test_token_is_read_from_the_data_dir(service: Service, tmp_path: Path) -> None:
    data_dir = tmp_path / "other"
    data_dir.mkdir()
    (data_dir / "admin.token").write_text(ADMIN_TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARKFLEET_")}
    result = subprocess.run(
        [LARKFLEET, "status", "--url", service.url, "--data-dir", str(data_dir), "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout)["connections"], list)


def test_every_operation_has_a_command(service: Service, sim_app: Callable[..., SimApp]) -> None:
    app = sim_app()
    added = cli(service, "bots", "add", "--name", "parity", "--app-id", app.app_id,
                "--app-secret", app.app_secret, "--domain", app.url, "--json")
    bot_id = json.loads(added.stdout)["id"]
    edited = cli(service, "bots", "edit", bot_id, "--name", "parity-2", "--handler",
                 '{"kind": "echo"}', "--verification-token", "vt-cli-secret", "--json")
    assert edited.returncode == 0, edited.stderr
    shown = json.loads(cli(service, "bots", "show", bot_id, "--json").stdout)
    assert shown["name"] == "parity-2" and shown["hasVerificationToken"] is True
    assert "vt-cli-secret" not in edited.stdout + json.dumps(shown)

    watch = subprocess.Popen(
        [LARKFLEET, "status", bot_id, "--watch", "--json", "--url", service.url],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LARKFLEET_")},
             "LARKFLEET_TOKEN": ADMIN_TOKEN},
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())
        assert (first["botId"], first["kind"], first["state"]) == (bot_id, "snapshot",
                                                                    "disconnected")
        waited = cli(service, "connect", bot_id, "--wait", "--timeout", "30")
        assert (waited.returncode, waited.stdout.strip()) == (0, f"{bot_id}: connected")
        states = []
        while "connected" not in states:
            record = json.loads(watch.stdout.readline())
            assert record["botId"] == bot_id
            states.append(record["state"])
        assert states[0] == "connecting"
    finally:
        watch.terminate()
        watch.wait(10)

    sent = cli(service, "send", bot_id, "hello from the cli", "--to", "ou_cli_user", "--json")
    assert sent.returncode == 0, sent.stderr
    assert any("hello from the cli" in m["content"] for m in app.sent())

    letters = cli(service, "dead-letters", "list", bot_id)
    assert letters.returncode == 0 and letters.stdout.split()[0] == "eventId"
    retry = cli(service, "dead-letters", "retry", bot_id, "no-such-event")
    assert retry.returncode == 1 and retry.stderr.startswith("larkfleet: HTTP 404")

    user = json.loads(cli(service, "users", "add", "carol", "--json").stdout)
    assert user["id"] in cli(service, "users", "list").stdout
    token = json.loads(cli(service, "tokens", "add", user["id"], "--json").stdout)["token"]
    assert cli(service, "status", "--json", token=token).returncode == 0
    listed = json.loads(cli(service, "tokens", "list", user["id"], "--json").stdout)["tokens"]
    assert len(listed) == 2 and token not in json.dumps(listed)
    one = cli(service, "tokens", "revoke", user["id"], listed[0]["id"])
    assert one.returncode == 0, one.stderr
    revoked = json.loads(cli(service, "tokens", "revoke", user["id"], "--json").stdout)
    assert revoked["revoked"] == 1
    assert cli(service, "status", token=token).returncode == 1
    assert cli(service, "users", "delete", user["id"]).returncode == 0
    audit = json.loads(cli(service, "audit", "--limit", "5", "--json").stdout)["entries"]
    assert audit and audit[0]["target"] == user["id"]

    deleted = cli(service, "bots", "delete", bot_id)
    assert deleted.stdout.strip().startswith(f"{bot_id}: deleted")
    assert cli(service, "bots", "show", bot_id).returncode == 1


def test_connect_wait_reports_a_refusal(service: Service, sim_app: Callable[..., SimApp]) -> None:
    app = sim_app()
    bot_id = service.create_bot(app.app_id, "wrong-secret", app.url)
    refused = cli(service, "connect", bot_id, "--wait", "--timeout", "30")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"larkfleet: {bot_id}: error")
    # The record that announced `error` carries the platform's text, never "None (code None)".
    assert "invalid app_id or app_secret (code 10003)" in refused.stderr, refused.stderr
    # Disconnected on purpose, the bot no longer shows its last failure as its status.
    assert cli(service, "disconnect", bot_id).returncode == 0
    status = json.loads(cli(service, "status", bot_id, "--json").stdout)
    assert (status["state"], status["error"], status["errorCode"], status["flapping"],
            status["privateBytes"]) == ("disconnected", None, None, False, 0)


def test_status_watch_prints_the_table_at_once(service: Service) -> None:
    """The table comes from the stream's snapshot, before any change happens."""
    bot_id = service.create_bot("cli_watch_app", "watch-secret", "http://127.0.0.1:9")
    listed = service.request("GET", "/api/feishu/ws/status").json()["connections"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARKFLEET_")}
    watch = subprocess.Popen([LARKFLEET, "status", "--watch", "--url", service.url],
                             env={**env, "LARKFLEET_TOKEN": ADMIN_TOKEN},
                             stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().split()[:2] == ["botId", "state"]
        rows = [watch.stdout.readline().split()[:2] for _ in range(len(listed))]
        assert [bot_id, "disconnected"] in rows
    finally:
        watch.terminate()
        watch.wait(10)
