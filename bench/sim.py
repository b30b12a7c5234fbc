"""The simulator in its own process, so its CPU does not share a GIL with the bench
or with what is measured; apps are registered and driven through its control API."""

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.service import LARKFLEET
from simulator import tls
from simulator.client import SimClient

log = logging.getLogger(__name__)

BANNER = "larkfleet simulator listening on "
APP_OPTIONS = {"reconnectNonce": 0, "reconnectInterval": 1, "maxConnections": None}
"""Real platform timings except the reconnect jitter, which would only add noise."""


class Platform:
    """`larkfleet sim --port 0` as a subprocess; `url` once started.

    With `use_tls` it serves https/wss, as the real platform does, with a throwaway CA
    that `client_env` makes clients (larkfleet, bare bots) trust.
    """

    def __init__(self, work_dir: Path, use_tls: bool = False) -> None:
        self.work_dir = work_dir
        self.tls_dir = work_dir / "tls" if use_tls else None
        self.url = ""
        self.client: SimClient | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._names = 0

    def start(self, timeout: float = 30.0) -> "Platform":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        out = self.work_dir / "sim.out"
        with out.open("wb") as sink:
            self.process = subprocess.Popen(
                [LARKFLEET, "sim", "--host", "127.0.0.1", "--port", "0",
                 *(["--tls-dir", str(self.tls_dir)] if self.tls_dir else [])],
                stdout=sink, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.url:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited: {out.read_text()[-2000:]}")
            for line in out.read_text().splitlines():
                if line.startswith(BANNER):
                    self.url = line[len(BANNER):].strip()
            time.sleep(0.05)
        if not self.url:
            raise RuntimeError("simulator did not print its address in time")
        ca = str(self.tls_dir / tls.CA_FILE) if self.tls_dir else True
        self.client = SimClient(self.url, timeout=120, verify=ca)
        log.info("simulator pid %d at %s", self.process.pid, self.url)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: trust the simulator's CA (empty when plain)."""
        return tls.client_env(self.tls_dir) if self.tls_dir else {}

    @property
    def sim(self) -> SimClient:
        if self.client is None:
            raise RuntimeError("platform not started")
        return self.client

    def new_apps(self, prefix: str, count: int, **options: Any) -> list[tuple[str, str]]:
        """Register `count` fresh apps (with simulator app `options` beyond APP_OPTIONS,
        e.g. verification_token); returns (app_id, secret) pairs."""
        apps = []
        for _ in range(count):
            self._names += 1
            app_id = f"cli_{prefix}_{self._names}"
            secret = f"secret-{app_id}"
            self.sim.create_app(app_id, secret, **{**APP_OPTIONS, **options})
            apps.append((app_id, secret))
        return apps

    def connections(self, app_id: str) -> int:
        return int(self.sim.info(app_id)["connections"])

