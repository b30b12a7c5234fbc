"""`larkfleet demo`: a bot answering in a minute, with no Feishu account.

It starts the simulator, runs a real `larkfleet serve` on a temporary data
directory, creates one echo bot pointed at the simulator, connects it, pushes
a few messages and prints the replies and the status table. Then it stays up
and prints curl lines (with the real token) to push more messages or to kill
the worker and watch it come back.
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.client import SimClient
from simulator.testing import SimulatorThread, wait_until
from supervisor.apiclient import STATUS_COLUMNS, ApiClient, ApiError, table

DEMO_APP_ID = "cli_demo_echo"
DEMO_MESSAGES = ("hello larkfleet", "are you there?", "bye")


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until `predicate` holds; an API that is not up yet counts as "not yet"."""

    def attempt() -> Any:
        try:
            return predicate()
        except ApiError:
            return None

    try:
        return wait_until(attempt, timeout, what, interval=0.1)
    except TimeoutError as error:
        raise SystemExit(f"larkfleet demo: timed out waiting for {what}") from error


def _start_service(data_dir: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "supervisor.cli", "serve",
               "--data-dir", str(data_dir), "--port", str(port)]
    env = {**os.environ, "LARKFLEET_ADMIN_TOKEN": token}
    log = (data_dir / "serve.out").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def _instructions(api: str, sim: str, token: str, bot_id: str, data_dir: Path) -> str:
    return f"""
The demo keeps running; press Ctrl-C to stop it.

  export TOKEN={token}
  # push a message as a Feishu user would, then read what the bot sent back:
  curl -s -X POST {sim}/_sim/apps/{DEMO_APP_ID}/events -H 'Content-Type: application/json' \\
       -d '{{"text": "ping"}}'
  curl -s {sim}/_sim/apps/{DEMO_APP_ID}/sent
  # the bot's status, and its log:
  curl -s -H "Authorization: Bearer $TOKEN" {api}/api/feishu/bots/{bot_id}/ws/status
  curl -s -H "Authorization: Bearer $TOKEN" '{api}/api/feishu/bots/{bot_id}/logs?tail=20'
  # kill the worker and watch it come back (restarts goes up, state returns to connected):
  larkfleet status --url {api} {bot_id} --json     # note the pid, then:
  kill -9 <pid>; sleep 2; larkfleet status --url {api} {bot_id}

Data directory: {data_dir}
"""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the demo like Ctrl-C, so the `finally` stops the service it started."""
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = Path(tempfile.mkdtemp(prefix="larkfleet-demo-")) / "data"
    data_dir.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    api_url = f"http://127.0.0.1:{args.port}"
    with SimulatorThread(port=args.sim_port) as simulator:
        sim = SimClient(simulator.url)
        sim.create_app(DEMO_APP_ID, "demo-secret", pingInterval=5, reconnectInterval=1,
                       reconnectNonce=0)
        service = _start_service(data_dir, args.port, token)
        try:
            print(f"simulator on {simulator.url}; starting larkfleet on {api_url} ...")
            api = ApiClient(api_url, token)
            _wait(lambda: api.call("GET", "/readyz"), 60, "the service to be ready")
            bot = api.json("POST", "/api/feishu/bots", {
                "name": "demo echo bot", "appId": DEMO_APP_ID, "appSecret": "demo-secret",
                "domain": simulator.url, "handler": {"kind": "echo"},
            })
            bot_id = bot["id"]
            api.json("POST", f"/api/feishu/bots/{bot_id}/ws/connect")
            status_path = f"/api/feishu/bots/{bot_id}/ws/status"
            _wait(lambda: api.json("GET", status_path)["state"] == "connected", 30,
                  "the bot to connect")
            for text in DEMO_MESSAGES:
                sim.push_event(DEMO_APP_ID, text)
                print(f"  user  > {text}")
            replies = _wait(lambda: len(sim.sent(DEMO_APP_ID)) >= len(DEMO_MESSAGES) and
                            sim.sent(DEMO_APP_ID), 30, "the replies")
            for reply in replies:
                print(f"  bot   < {json.loads(reply['content']).get('text', reply['content'])}")
            print()
            print(table([api.json("GET", status_path)], STATUS_COLUMNS))
            print(_instructions(api_url, simulator.url, token, bot_id, data_dir))
            while service.poll() is None:
                time.sleep(1.0)
            return service.returncode or 0
        except KeyboardInterrupt:
            return 0
        finally:
            if service.poll() is None:
                service.terminate()
                service.wait(30)
