"""Each measurement on its own: they take a started platform/fleet and return raw samples
in seconds (or MiB); bench.run turns them into figures. Latencies come from the
simulator's own clock (`sentAt` -> `at`), never from the bench's polling."""

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import requests

from bench.fleet import Fleet
from bench.proc import cpu_seconds
from bench.service import alive
from bench.sim import Platform
from shared.ratelimits import APP_LIMITS

log = logging.getLogger(__name__)

POLL = 0.02
REPLY_SPACING_S = max(limit.window_s / limit.count for limit in APP_LIMITS) * 1.1
"""Replies the platform lets one app send back to back (shared/ratelimits.py: 50/s and
1,000/min, so one per 60 ms, plus a margin): faster, the bare bot is refused at the 51st
reply and larkfleet's pacer holds its replies, so neither would measure the event path."""


def ack_latencies(platform: Platform, app_id: str, count: int, warmup: int) -> list[float]:
    """`count` events one at a time (push, wait for the ACK, next) after `warmup` unmeasured
    ones; push-to-ACK seconds of each, as the simulator timed them."""
    platform.sim.flood(app_id, warmup)
    before = len(platform.sim.info(app_id)["acked"])
    platform.sim.flood(app_id, count)
    acked = platform.sim.info(app_id)["acked"][before:]
    samples = [a["at"] - a["sentAt"] for a in acked if a["code"] == 200 and a["sentAt"]]
    if len(samples) < count:
        raise RuntimeError(f"only {len(samples)} of {count} events got a 200 ACK")
    return samples


def throughput(platform: Platform, app_id: str, count: int, window: int) -> float:
    """Events per second with `window` events in flight, as the simulator timed them."""
    return float(platform.sim.flood(app_id, count, window)["eventsPerSecond"])


def echo_latencies(platform: Platform, app_id: str, count: int, timeout: float) -> list[float]:
    """Push one message, wait until its reply is recorded, next (no faster than one push per
    REPLY_SPACING_S): push-to-reply seconds."""
    sim = platform.sim
    acked_before = len(sim.info(app_id)["acked"])
    replied = len(sim.sent(app_id))
    pushed: list[tuple[str, str]] = []
    replies: list[dict[str, Any]] = []
    next_push_mono = time.monotonic()
    for number in range(count):
        time.sleep(max(0.0, next_push_mono - time.monotonic()))
        next_push_mono = time.monotonic() + REPLY_SPACING_S
        answer = sim.push_event(app_id, f"echo {number}")
        pushed.append((answer["eventId"], answer["messageId"]))
        deadline = time.monotonic() + timeout
        fresh: list[dict[str, Any]] = []
        while not fresh and time.monotonic() < deadline:
            time.sleep(0.002)
            fresh = sim.sent(app_id, after=replied)
        if not fresh:
            raise TimeoutError(f"no reply to echo {number} within {timeout:.0f} s")
        replied += len(fresh)
        replies.extend(fresh)
    sent_at = _sent_at(platform, app_id, acked_before, [e for e, _ in pushed])
    reply_at = {r["replyTo"]: r["at"] for r in replies}
    return [reply_at[message_id] - sent_at[event_id] for event_id, message_id in pushed]


def webhook_latencies(platform: Platform, app_id: str, url: str, count: int,
                      challenge: bool) -> list[float]:
    """Have the platform push to `url` `count` times, one after another: seconds from its
    send to the whole answer read, as the simulator measures them (a new connection per
    push, as the platform makes). `challenge` pushes url_verification, else a signed and
    encrypted message event. Raises RuntimeError on any answer but 200."""
    samples = []
    for number in range(count):
        fields = {"challenge": True} if challenge else {"text": f"webhook {number}"}
        answer = platform.sim.webhook(app_id, url, **fields)
        if answer["status"] != 200:
            raise RuntimeError(f"webhook push answered {answer['status']}: {answer['body']}")
        samples.append(float(answer["seconds"]))
    return samples


def stream_latencies(platform: Platform, app_id: str, count: int,
                     timeout: float) -> list[tuple[float, float]]:
    """Push one message to a streaming bot, wait until its card is final, next: per event
    (push -> "thinking" card shown, push -> first card update, i.e. the first visible token),
    in seconds on the simulator's clock."""
    sim = platform.sim
    acked_before = len(sim.info(app_id)["acked"])
    pushed: list[tuple[str, str]] = []
    for number in range(count):
        answer = sim.push_event(app_id, f"stream {number}")
        pushed.append((answer["eventId"], answer["messageId"]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(POLL)
            card = [s for s in sim.sent(app_id) if s["replyTo"] == answer["messageId"]]
            if card and "token19" in card[0]["content"]:
                break
        else:
            raise TimeoutError(f"stream {number}: no final card within {timeout:.0f} s")
    sent_at = _sent_at(platform, app_id, acked_before, [e for e, _ in pushed])
    info = sim.info(app_id)
    card_of = {s["replyTo"]: s for s in info["sent"]}
    first_update: dict[str, float] = {}
    for update in info["updates"]:
        first_update.setdefault(update["messageId"], update["at"])
    samples = []
    for event_id, message_id in pushed:
        card = card_of[message_id]
        samples.append((card["at"] - sent_at[event_id],
                        first_update[card["messageId"]] - sent_at[event_id]))
    return samples


def _sent_at(platform: Platform, app_id: str, after: int, event_ids: list[str],
             deadline_s: float = 10.0) -> dict[str, float]:
    """eventId -> when the simulator pushed it, from the ACK records; waits for late ACKs
    (a bare bot replying inline ACKs after its reply was recorded)."""
    deadline = time.monotonic() + deadline_s
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        acked = platform.sim.info(app_id)["acked"][after:]
        found = {a["eventId"]: a["sentAt"] for a in acked if a["sentAt"]}
        if found.keys() >= set(event_ids):
            break
        time.sleep(POLL)
    return found


def connect_time(fleet: Fleet, bot_ids: list[str], timeout: float) -> tuple[float, dict]:
    """N connect calls, then follow the events stream until all N are connected: (seconds,
    their statuses)."""
    began = time.monotonic()
    fleet.connect(bot_ids)
    statuses = fleet.wait_connected(bot_ids, timeout)
    return time.monotonic() - began, statuses


def recovery(fleet: Fleet, bot_ids: list[str], timeout: float) -> list[float]:
    """kill -9 each bot's worker in turn; seconds until it is connected with a new pid.
    One trial per bot keeps every bot's backoff at its first step (0-1 s of jitter)."""
    samples = []
    for bot_id in bot_ids:
        pid = fleet.status(bot_id)["pid"]
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        fleet.wait_connected([bot_id], timeout, not_pids={bot_id: pid})
        samples.append(time.monotonic() - began)
    return samples


def mass_recovery(fleet: Fleet, bot_ids: list[str], timeout: float) -> float:
    """kill -9 every worker of `bot_ids` at once; seconds until all are connected again."""
    pids = {bot_id: fleet.status(bot_id)["pid"] for bot_id in bot_ids}
    began = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    fleet.wait_connected(bot_ids, timeout, not_pids=pids)
    return time.monotonic() - began


def hang_detection(fleet: Fleet, bot_ids: list[str], timeout: float,
                   stagger: float = 0.3) -> list[float]:
    """SIGSTOP each bot's worker (staggered, so the supervisor's ticks land at different
    phases); seconds until a new worker is connected. Stopped workers are SIGKILLed after."""
    stopped: dict[str, tuple[int, float]] = {}
    try:
        for bot_id in bot_ids:
            pid = fleet.status(bot_id)["pid"]
            os.kill(pid, signal.SIGSTOP)
            stopped[bot_id] = (pid, time.monotonic())
            time.sleep(stagger)
        return _replacement_times(fleet, stopped, timeout)
    finally:
        for pid, _ in stopped.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _replacement_times(fleet: Fleet, stopped: dict[str, tuple[int, float]],
                       timeout: float) -> list[float]:
    """Seconds from each bot's SIGSTOP (`stopped`: bot -> (pid, when)) to a worker with
    another pid connected, as the events stream tells it (`Fleet.wait_connected`)."""
    done: dict[str, float] = {}

    def replaced(bot_id: str) -> None:
        done[bot_id] = time.monotonic() - stopped[bot_id][1]

    try:
        fleet.wait_connected(list(stopped), timeout,
                            not_pids={bot_id: pid for bot_id, (pid, _) in stopped.items()},
                            on_ready=replaced)
    except TimeoutError:
        raise TimeoutError(f"{len(stopped) - len(done)} stopped workers not replaced") from None
    return [done[bot_id] for bot_id in stopped]


@dataclass(frozen=True)
class Restart:
    stop_s: float
    ready_s: float
    connected_s: float
    """From launching the new supervisor to every desired bot connected."""


def supervisor_restart(fleet: Fleet, bot_ids: list[str], timeout: float) -> Restart:
    stop_s = fleet.restart()
    began = time.monotonic()
    ready_s = fleet.start()
    fleet.wait_connected(bot_ids, timeout)
    return Restart(stop_s, ready_s, time.monotonic() - began)


def status_api(fleet: Fleet, requests_n: int) -> list[float]:
    """Sequential GET /api/feishu/ws/status on one keep-alive session: seconds each."""
    session = requests.Session()
    session.headers.update(fleet.service.http.headers)
    url = f"{fleet.service.url}/api/feishu/ws/status"
    samples = []
    for _ in range(requests_n):
        began = time.perf_counter()
        response = session.get(url, timeout=10)
        samples.append(time.perf_counter() - began)
        response.raise_for_status()
    return samples


def cpu_at_rest(pids: list[int], window_s: float) -> float:
    """Share of one core that `pids` together use over `window_s` of idling (1.0 = a core)."""
    began, used = time.monotonic(), cpu_seconds(pids)
    time.sleep(window_s)
    return (cpu_seconds(pids) - used) / (time.monotonic() - began)
