"""The baseline side: one plain Python process per bot running the SDK's ws.Client.

Two ws.Clients in one process break each other (the SDK's module-level loop), so
this is how users run N bots today: N processes, each paying the import and the
memory of lark_oapi on its own.
"""

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.proc import uss_mib
from bench.sim import Platform

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("bare_bot.py")


@dataclass
class BareBot:
    app_id: str
    secret: str
    process: subprocess.Popen[bytes]
    started: float
    connected_after: float | None = None


@dataclass
class BareFleet:
    """N bare bot processes against the simulator; `stop` kills them all."""

    platform: Platform
    log_dir: Path
    bots: list[BareBot] = field(default_factory=list)

    def start(self, apps: list[tuple[str, str]], mode: str = "idle") -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for app_id, secret in apps:
            with (self.log_dir / f"{app_id}.log").open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, str(SCRIPT), app_id, secret, self.platform.url, mode],
                    stdout=sink, stderr=subprocess.STDOUT,
                    env={**os.environ, **self.platform.client_env()},
                )
            self.bots.append(BareBot(app_id, secret, process, time.monotonic()))

    def wait_connected(self, timeout: float) -> float:
        """Poll the simulator until every bot holds a connection; seconds from the first
        start to the last connection. Each bot's own start-to-connected is kept too."""
        deadline = time.monotonic() + timeout
        waiting = [bot for bot in self.bots if bot.connected_after is None]
        while waiting and time.monotonic() < deadline:
            for bot in waiting:
                if bot.process.poll() is not None:
                    raise RuntimeError(f"bare bot {bot.app_id} exited {bot.process.returncode}")
                if self.platform.connections(bot.app_id) > 0:
                    bot.connected_after = time.monotonic() - bot.started
            waiting = [bot for bot in waiting if bot.connected_after is None]
            time.sleep(0.02)
        if waiting:
            raise TimeoutError(f"{len(waiting)} bare bots not connected in {timeout:.0f} s")
        first = min(bot.started for bot in self.bots)
        last = max(bot.started + (bot.connected_after or 0.0) for bot in self.bots)
        return last - first

    def pids(self) -> list[int]:
        return [bot.process.pid for bot in self.bots]

    def uss(self) -> list[float]:
        return [uss_mib(bot.process.pid) for bot in self.bots]

    def stop(self) -> None:
        for bot in self.bots:
            if bot.process.poll() is None:
                bot.process.kill()
        for bot in self.bots:
            bot.process.wait(10)
        self.bots.clear()
