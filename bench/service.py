"""A real `larkfleet serve` in a subprocess, driven through its HTTP API.

The bench and the integration tests both use it with the simulator: real
supervisor, real zygote, real workers, real ZeroMQ and SQLite. It ships in the
wheel (the bench is a shipped tool), so it imports nothing from `tests/`.
Tests shrink timeouts through `FAST_ENV`, passed as `env`, so the code under
test is the code that ships; the bench keeps the shipped defaults.
"""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from simulator.testing import wait_until

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghijk"
"""The admin token every harnessed service is started with: long enough for the weak-token
check (supervisor/admintoken.py)."""
LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))

ZYGOTE_SPEEDUPS = {
    "LARKFLEET_IMMORTAL_OBJECTS": "0",
}
"""A zygote ready ~1 s sooner on a slow 2-core host, for tests that start dozens of them and
measure no memory: no immortal marking (worker/immortal.py's SWITCH). tests/test_immortal.py
and the quick bench run with the shipped defaults."""
FAST_ENV = {
    "LARKFLEET_HEARTBEAT_TIMEOUT": "3",
    "LARKFLEET_STOP_GRACE": "5",
    **ZYGOTE_SPEEDUPS,
}
"""Shorter timeouts for tests, so a hung worker or a stop is seen in seconds, and
`ZYGOTE_SPEEDUPS`."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One supervisor process on its own data directory and port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LARKFLEET_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        # The service is on loopback, so no proxy or CA variable applies to it, and
        # requests would merge the environment into every call (~15 % of a call's CPU,
        # worker/sdkhttp.py `EnvOnceSession`): CPU the measuring client takes from the
        # host it shares with the connect it measures.
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def start(self, timeout: float = 60.0) -> "Service":
        command = [LARKFLEET, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "serve.out").open("ab")
        self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        wait_until(self._ready, timeout, "the service to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"larkfleet serve exited with {self.process.returncode}")
        try:
            return self.http.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # starting: not ready yet
            return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.url}{path}", timeout=30, **kwargs)

    def create_bot(self, app_id: str, app_secret: str, domain: str, **fields: Any) -> str:
        body = {"name": f"bot-{app_id}", "appId": app_id, "appSecret": app_secret,
                "domain": domain, **fields}
        response = self.request("POST", "/api/feishu/bots", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def connect(self, bot_id: str) -> None:
        response = self.request("POST", f"/api/feishu/bots/{bot_id}/ws/connect")
        assert response.status_code == 202, response.text

    def status(self, bot_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/feishu/bots/{bot_id}/ws/status")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(
        self, bot_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status = self.status(bot_id)
            return status if predicate(status) else None

        return wait_until(check, timeout, f"{bot_id}: {what}")

    def wait_state(self, bot_id: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_status(bot_id, lambda s: s["state"] == state, timeout, f"state {state}")

    def worker_pids(self) -> set[int]:
        """Pids of every live worker: the children of the zygote, itself our child."""
        assert self.process is not None
        tree = process_tree()
        return {pid for child in tree.get(self.process.pid, []) for pid in tree.get(child, [])}

    def fleet_pids(self) -> set[int]:
        """Pids of the zygote and every live worker: all the supervisor started but
        the resource tracker."""
        assert self.process is not None
        tree = process_tree()
        zygotes = [pid for pid in tree.get(self.process.pid, []) if is_zygote(pid)]
        return {*zygotes, *(pid for zygote in zygotes for pid in tree.get(zygote, []))}


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids of every live process, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    return children


def is_zygote(pid: int) -> bool:
    """The multiprocess forkserver, told by its command line (the title worker.preload
    sets, or the forkserver's own before its preload ran)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith(b"larkfleet zygote") or b"forkserver" in cmdline


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
