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
import shlex
import shutil
import signal
import socket
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
from supervisor.preflight import port_is_free

DEMO_APP_ID = "cli_demo_echo"
DEMO_MESSAGES = ("hello larkfleet", "are you there?", "bye")


HOST = "127.0.0.1"


def choose_port(wanted: int, what: str) -> int:
    """`wanted` when it is free, else a free port, said plainly (another service holds it)."""
    if wanted == 0 or port_is_free(HOST, wanted):
        return wanted
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    print(f"port {wanted} is taken by another process (a `make run`?); "
          f"the demo's {what} uses port {port} instead")
    return port


def cli_command() -> str:
    """How the user reaches the CLI from here: `larkfleet` when on PATH, else its path."""
    installed = Path(sys.executable).with_name("larkfleet")
    on_path = shutil.which("larkfleet")
    if on_path and Path(on_path).resolve() == installed.resolve():
        return "larkfleet"
    try:
        return shlex.quote(os.path.relpath(installed))
    except ValueError:
        return shlex.quote(str(installed))


class ServiceDied(Exception):
    """The demo's own `larkfleet serve` exited: its one-line reason is the message."""


def _wait(
    predicate: Callable[[], Any], timeout: float, what: str,
    service: subprocess.Popen[bytes] | None = None, log: Path | None = None,
) -> Any:
    """Poll until `predicate` holds; an API that is not up yet counts as "not yet".

    When the demo's service exits meanwhile, raises ServiceDied with its last line.
    """

    def attempt() -> Any:
        if service is not None and service.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] if log else []
            raise ServiceDied(last[0] if last else f"exit status {service.returncode}")
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
               "--data-dir", str(data_dir), "--host", HOST, "--port", str(port)]
    env = {**os.environ, "LARKFLEET_ADMIN_TOKEN": token}
    log = (data_dir / "serve.out").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def _instructions(api: str, sim: str, token: str, bot_id: str, data_dir: Path) -> str:
    cli = cli_command()
    return f"""
The demo keeps running; press Ctrl-C to stop it (its data directory is removed then).
In another terminal (the CLI reads these two variables; curl uses them too):

  export LARKFLEET_URL={api} LARKFLEET_TOKEN={token}
  {cli} status                       # every bot's state
  {cli} logs {bot_id} -f       # its log, following
  # push a message as a Feishu user would, then read what the bot sent back:
  curl -s -X POST {sim}/_sim/apps/{DEMO_APP_ID}/events -H 'Content-Type: application/json' \\
       -d '{{"text": "ping"}}'
  curl -s {sim}/_sim/apps/{DEMO_APP_ID}/sent
  # the same status through the HTTP API:
  curl -s -H "Authorization: Bearer $LARKFLEET_TOKEN" \\
       $LARKFLEET_URL/api/feishu/bots/{bot_id}/ws/status
  # kill the worker and watch it come back (restarts goes up, state returns to connected):
  {cli} status {bot_id} --json     # note the pid, then:
  kill -9 <pid>; sleep 2; {cli} status {bot_id}

Dashboard: {api}/ (sign in with the token above)
Data directory: {data_dir}
"""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends the demo like Ctrl-C, so the `finally` stops the service it started."""
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    """Runs until Ctrl-C/SIGTERM (exit 0); 1 with one line when the demo cannot run."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    scratch = Path(tempfile.mkdtemp(prefix="larkfleet-demo-"))
    try:
        return _run(args, scratch / "data")
    except ServiceDied as error:
        print(f"larkfleet demo: the service stopped: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    data_dir.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    sim_port = choose_port(args.sim_port, "simulator")
    port = choose_port(args.port, "API")
    api_url = f"http://{HOST}:{port}"
    with SimulatorThread(host=HOST, port=sim_port) as simulator:
        sim = SimClient(simulator.url)
        sim.create_app(DEMO_APP_ID, "demo-secret", pingInterval=5, reconnectInterval=1,
                       reconnectNonce=0)
        service = _start_service(data_dir, port, token)
        try:
            print(f"simulator on {simulator.url}; starting larkfleet on {api_url} ...")
            api = ApiClient(api_url, token)
            # Authenticated, so a service of someone else on this port never passes for ours.
            _wait(lambda: api.call("GET", "/readyz") and api.call("GET", "/api/feishu/bots"),
                  60, "the service to be ready", service, data_dir / "serve.out")
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
