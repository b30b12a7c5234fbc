"""The larkfleet side: a real `larkfleet serve` (the shipped harness, `bench/service.py`) with its
zygote and workers, driven through the HTTP API like a user would."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.proc import rss_mib, uss_mib
from bench.service import Service, is_zygote, process_tree
from supervisor.settings import IDLE_BEAT_S
from worker.liveness import MEMORY_RESAMPLE_S

log = logging.getLogger(__name__)

ENV = {"LARKFLEET_HEARTBEAT_TIMEOUT": "5", "LARKFLEET_STOP_GRACE": "10",
       "LARKFLEET_LOG_LEVEL": "INFO"}
"""The shipped defaults: the test harness shrinks them, the bench must not."""

FIRST_SAMPLE_S = MEMORY_RESAMPLE_S + IDLE_BEAT_S
"""The latest a worker takes its first private-memory sample (~2 ms of CPU), counted from
its start: at its first beat at or after MEMORY_RESAMPLE_S, and an idle worker beats every
IDLE_BEAT_S. A CPU-at-rest window that starts later holds none of them."""

POLL_PER_BOT_S = 0.0001
"""`wait_connected` polls every 0.1 s at 1,000 bots, every 20 ms up to 200."""

SILENT = {"kind": "python", "target": "bench.handlers:silent"}
ECHO = {"kind": "echo"}
STREAM = {"kind": "python", "target": "bench.handlers:stream"}


class Fleet:
    """One supervisor on `data_dir`; `restart` keeps the data dir (and desired state)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        """`env` adds to the shipped defaults (the simulator's CA, for a TLS run)."""
        self.data_dir = data_dir
        self.env = {**ENV, **(env or {})}
        self.service = Service(data_dir, env=self.env)

    def start(self) -> float:
        """Start and wait for /readyz (zygote warmed up); returns seconds taken."""
        began = time.monotonic()
        self.service.start(timeout=120)
        return time.monotonic() - began

    def stop(self) -> float:
        began = time.monotonic()
        self.service.stop(timeout=60)
        return time.monotonic() - began

    def restart(self) -> float:
        """Stop, then start a new supervisor on the same data dir; returns stop seconds."""
        stopped = self.stop()
        self.restart_after_kill()
        return stopped

    def restart_after_kill(self) -> None:
        """A new (not started) supervisor on the same data dir, once the old one ended."""
        self.service = Service(self.data_dir, env=self.env)

    def create_bots(self, apps: list[tuple[str, str]], url: str,
                    handler: dict[str, Any]) -> list[str]:
        return [self.service.create_bot(app_id, secret, url, handler=handler)
                for app_id, secret in apps]

    def connect(self, bot_ids: list[str]) -> None:
        """One connect call per bot, one after another, as a script would."""
        for bot_id in bot_ids:
            self.service.connect(bot_id)

    def disconnect(self, bot_ids: list[str]) -> None:
        """Disconnect calls in parallel: each answers once its worker is gone."""
        path = "/api/feishu/bots/{}/ws/disconnect"
        with ThreadPoolExecutor(16) as pool:
            answers = pool.map(lambda b: self.service.request("POST", path.format(b)), bot_ids)
            failed = [a.text for a in answers if a.status_code != 200]
        if failed:
            raise RuntimeError(f"disconnect failed: {failed[:3]}")

    def statuses(self) -> dict[str, dict[str, Any]]:
        response = self.service.request("GET", "/api/feishu/ws/status")
        response.raise_for_status()
        return {s["botId"]: s for s in response.json()["connections"]}

    def wait_connected(self, bot_ids: list[str], timeout: float,
                       not_pids: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
        """Poll the status list until every bot is connected (with a pid other than
        `not_pids[bot]`, when given); returns their statuses.

        Polls every POLL_PER_BOT_S x N seconds, at least every 20 ms: a poll's cost on
        both sides grows with N (the whole list, ~400 bytes a bot, built, sent and
        parsed), so the measure takes the same share of the host whatever N. At 20 ms
        for 1,000 bots it was ~7 % of the host's CPU during the connect (bench/NOTES.md).
        """
        deadline = time.monotonic() + timeout
        wanted = set(bot_ids)
        pause = max(0.02, POLL_PER_BOT_S * len(wanted))
        while time.monotonic() < deadline:
            statuses = self.statuses()
            ready = {b for b in wanted if _connected(statuses.get(b), (not_pids or {}).get(b))}
            if ready == wanted:
                return {b: statuses[b] for b in wanted}
            time.sleep(pause)
        raise TimeoutError(f"{len(wanted - ready)} of {len(wanted)} bots not connected "
                           f"in {timeout:.0f} s")

    def status(self, bot_id: str) -> dict[str, Any]:
        return self.service.status(bot_id)

    @property
    def supervisor_pid(self) -> int:
        if self.service.process is None:
            raise RuntimeError("fleet not started")
        return self.service.process.pid

    def zygote_pid(self) -> int | None:
        """The supervisor's child running the multiprocess forkserver."""
        return next((pid for pid in process_tree().get(self.supervisor_pid, [])
                     if is_zygote(pid)), None)

    def pids(self, statuses: dict[str, dict[str, Any]]) -> list[int]:
        """Supervisor, zygote and the workers of `statuses`: every process the fleet runs."""
        zygote = self.zygote_pid()
        return [self.supervisor_pid, *([zygote] if zygote else []),
                *(s["pid"] for s in statuses.values() if s["pid"])]

    def supervisor_rss(self) -> float:
        return rss_mib(self.supervisor_pid)

    def worker_uss(self, statuses: dict[str, dict[str, Any]]) -> list[float]:
        return [uss_mib(s["pid"]) for s in statuses.values()]

    def zygote_memory(self) -> tuple[float, float]:
        """(RSS, USS) of the zygote in MiB, reported once: it is not per bot."""
        pid = self.zygote_pid()
        return (rss_mib(pid), uss_mib(pid)) if pid else (0.0, 0.0)


def _connected(status: dict[str, Any] | None, not_pid: int | None) -> bool:
    return bool(status and status["state"] == "connected" and status["pid"]
                and status["pid"] != not_pid)
