"""The CLI's thin clients against a real service: table for people, JSON for scripts."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.service import ADMIN_TOKEN, Service
from tests.fixtures.sim import SimApp

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
    assert json.loads(result.stdout) == {"connections": []}
