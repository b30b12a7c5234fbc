"""The larkfleet side: a real `larkfleet serve` (the shipped harness, `bench/service.py`) with its
zygote and workers, driven through the HTTP API like a user would."""

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import requests

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

EVENTS = "/api/feishu/events"
RECORD_ONLY = ("kind", "fromState", "why", "at")
"""Fields an events record adds to the bot's status (api/events.py)."""
CONNECT_S = 5.0
"""At most this long to open the events stream (the service answers at once)."""
REOPEN_S = 0.1
"""Pause before opening the events stream again after it ended before the deadline."""

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
                       not_pids: dict[str, int] | None = None,
                       on_ready: Callable[[str], None] | None = None,
                       ) -> dict[str, dict[str, Any]]:
        """Follow the events stream until every bot is connected (with a pid other than
        `not_pids[bot]`, when given); returns their statuses, as the status list gives them.
        `on_ready(bot_id)`, when given, is called the first time each bot is seen
        connected, as the record that says so is read: a per-bot time can be taken there.

        The stream starts with every bot's status, then sends one line per change, so the
        wait costs the service and this client one line per change. Polling the whole
        status list instead (~400 bytes a bot, built, sent and parsed) cost both sides
        several ms a poll at 1,000 bots: ~4-6 CPU-s over a 40 s connect of the CPU-bound
        2-core bench host, which inflated the connect time it measured, and polling less
        often lost precision (bench/NOTES.md). No read waits past the deadline; a stream
        that ends before the deadline is opened again (its snapshot makes that safe). Raises
        TimeoutError past the deadline, and what opening the stream raises (the service
        gone, a refused token) at once, as the status poll did.
        """
        deadline = time.monotonic() + timeout
        wanted = set(bot_ids)
        if not wanted:
            return {}
        not_pids = not_pids or {}
        latest: dict[str, dict[str, Any]] = {}
        ready: set[str] = set()
        seen_ready: set[str] = set()
        while time.monotonic() < deadline:
            with closing(self._records(deadline)) as records:
                for record in records:
                    bot_id = record["botId"]
                    if bot_id not in wanted:
                        continue
                    latest[bot_id] = record
                    if _connected(record, not_pids.get(bot_id)):
                        if on_ready is not None and bot_id not in seen_ready:
                            seen_ready.add(bot_id)
                            on_ready(bot_id)
                        ready.add(bot_id)
                    else:
                        ready.discard(bot_id)
                    if len(ready) == len(wanted):
                        return {b: _status(latest[b]) for b in wanted}
            time.sleep(max(0.0, min(REOPEN_S, deadline - time.monotonic())))
        raise TimeoutError(f"{len(wanted - ready)} of {len(wanted)} bots not connected "
                           f"in {timeout:.0f} s")

    def _records(self, deadline: float) -> Iterator[dict[str, Any]]:
        """The records of one events stream (snapshot, then changes), with the service's
        admin auth, until the stream ends, breaks or `deadline` passes; each read waits
        at most until `deadline`."""
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with requests.Session() as http:
            http.headers.update(self.service.http.headers)
            http.headers["Accept"] = "text/event-stream"
            try:
                response = http.get(f"{self.service.url}{EVENTS}", stream=True,
                                    timeout=(min(CONNECT_S, left), left))
            except requests.Timeout:
                return  # no answer before the deadline
            with response:
                response.raise_for_status()
                sock = _socket(response)
                try:
                    yield from _sse_records(response, sock, deadline)
                except requests.RequestException:
                    return  # broken, or a read reached the deadline: the caller decides

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


def _status(record: dict[str, Any]) -> dict[str, Any]:
    """An events record as the status list gives it: without what the change adds."""
    return {k: v for k, v in record.items() if k not in RECORD_ONLY}


def _socket(response: requests.Response) -> socket.socket:
    """The stream's socket: requests sets one read timeout for a whole response, and a
    wait bounded by a deadline needs each read bounded by the time left."""
    sock = response.raw.connection.sock
    if not isinstance(sock, socket.socket):
        raise RuntimeError(f"no socket under the events stream: {sock!r}")
    return sock


def _sse_records(response: requests.Response, sock: socket.socket,
                 deadline: float) -> Iterator[dict[str, Any]]:
    """The JSON of each Server-Sent Event of `response`, until it ends or `deadline`
    passes. An event's `data:` lines are joined and dispatched at the blank line that
    ends it; comments (`: ready`, `: keepalive`) and other fields (`retry:`) carry none.
    A removed bot's record is `{"botId": ..., "state": null, ...}`."""
    chunks = response.iter_content(chunk_size=None)
    pending = b""
    data: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        chunk = next(chunks, None)
        if chunk is None:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r")
            if not line:
                if data:
                    yield json.loads(b"\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
