"""One worker process = one connection session, from Hello to exit code.

The worker never retries anything itself: the supervisor owns backoff. So the
session's whole lifecycle is "run until the first reason to end, then wind
down": the first `Exit` decided (Stop, a signal, the connection lost or
refused, the supervisor gone, a crashed task) wins, later ones are ignored,
and the exit code tells the supervisor what to do next. The reported
connection state is a ConnState; the session needs nothing beyond it and
that one decision.
"""

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import exitcodes
from shared.liveness_board import SUPERVISOR_SLOT, BeatWatch, LivenessBoard
from shared.messages import (
    Answered,
    Deliver,
    DeliverResult,
    Heartbeat,
    Hello,
    Ping,
    RetryDeadLetter,
    RetryResult,
    Send,
    SendResult,
    StateChanged,
    Stop,
    WorkerSpec,
    failed_reply,
)
from shared.paths import DataPaths
from shared.results import parse_result
from shared.security import WEBHOOK_AUTH_REQUIRED
from shared.states import ConnState
from worker.beats import BeatTimer
from worker.connection import Failure, LarkConnection, classify
from worker.control import ControlChannel
from worker.liveness import PrivateMemory, SupervisorWatch
from worker.pipeline import ConsumerSettings, EventPipeline

logger = logging.getLogger(__name__)

SIGNAL_GRACE = Stop().grace
"""SIGTERM/SIGINT get the same grace as a Stop without an explicit one."""

FAILURE_GRACE = 1.5
"""Winding down after a failure: close and flush quickly, the supervisor is waiting to retry."""

DRAIN_POLL = 0.02
"""Seconds between looks at the pending count while a stop drains the spool."""
DRAIN_STALL = 1.0
"""A drain gives up when the pending count has not gone down for this long."""

GRACE_MARGIN = 1.0
"""Finish this long before the grace ends, so the supervisor's SIGKILL never races the exit."""
ANSWERED_REPORT_S = 0.2
"""Cluster mode: how long answered events gather before the worker reports them."""


@dataclass(frozen=True)
class Exit:
    """Why the session ends, its exit code and the last StateChanged it owes the supervisor."""

    code: int
    reason: str
    grace: float = FAILURE_GRACE
    state: ConnState | None = None
    error: str | None = None
    error_code: int | None = None
    permanent: bool = False

    @classmethod
    def stopped(cls, reason: str, grace: float) -> "Exit":
        return cls(exitcodes.STOPPED, reason, grace=grace)

    @classmethod
    def failed(cls, failure: Failure) -> "Exit":
        """Permanent refusals end in `error` (no retries); the rest in `reconnecting`."""
        if failure.permanent:
            return cls(
                exitcodes.PERMANENT,
                failure.message,
                state=ConnState.ERROR,
                error=failure.message,
                error_code=failure.code,
                permanent=True,
            )
        return cls(
            exitcodes.TRANSIENT,
            failure.message,
            state=ConnState.RECONNECTING,
            error=failure.message,
            error_code=failure.code,
        )

    @classmethod
    def supervisor_gone(cls, reason: str) -> "Exit":
        return cls(exitcodes.SUPERVISOR_GONE, reason)


class WorkerSession:
    def __init__(self, spec: WorkerSpec, control: ControlChannel) -> None:
        self._spec = spec
        self._bot = spec.bot
        self._private_memory = PrivateMemory()
        self._paths = DataPaths(Path(spec.data_dir))
        self._control = control
        self._watch = SupervisorWatch(spec.supervisor_timeout)
        self._board = LivenessBoard(Path(spec.liveness_path)) if spec.liveness_path else None
        self._reported: tuple[object, ...] | None = None
        self._state = ConnState.CONNECTING if self._bot.use_websocket else ConnState.WEBHOOK
        self._connected_epoch: float | None = None
        self._pipeline: EventPipeline | None = None
        self._connection: LarkConnection | None = None
        self._pipeline_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self._exit: asyncio.Future[Exit] = asyncio.get_running_loop().create_future()
        self._beats: BeatTimer | None = None
        self._answered_timer: asyncio.TimerHandle | None = None

    async def run(self) -> int:
        """Serve until the first reason to end, wind down within its grace, return the code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._send(Hello(bot_id=self._bot.id, incarnation=self._spec.incarnation, pid=os.getpid(),
                         loop_tid=threading.get_native_id()))
        self._spawn(self._listen())
        if self._board is not None:
            self._start_beats(self._board)
        else:
            self._spawn(self._heartbeat())
            self._spawn(self._watch_supervisor())
        self._start_pipeline()
        if self._pipeline is not None:
            if self._bot.use_websocket:
                self._spawn(self._hold_connection())
            elif self._bot.webhook_unauthenticated:
                logger.error("refusing every push: %s", WEBHOOK_AUTH_REQUIRED)
                self._report(ConnState.ERROR, WEBHOOK_AUTH_REQUIRED)
            else:
                self._report(ConnState.WEBHOOK)
                self._warm_up()
        outcome = await self._exit
        await self._wind_down(outcome)
        return outcome.code

    def _finish(self, outcome: Exit) -> None:
        """Decide how the session ends; only the first decision counts."""
        if self._exit.done():
            logger.debug("already ending; ignored: %s", outcome.reason)
            return
        level = logging.INFO if outcome.code == exitcodes.STOPPED else logging.WARNING
        logger.log(level, "ending with exit code %d: %s", outcome.code, outcome.reason)
        self._exit.set_result(outcome)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._finish(Exit.stopped(f"{sig.name} received", SIGNAL_GRACE))

    def _start_pipeline(self) -> None:
        try:
            settings = ConsumerSettings(
                max_attempts=self._spec.event_max_attempts,
                backoff_base_s=self._spec.event_retry_base,
            )
            self._pipeline = EventPipeline(self._bot, self._paths, settings, self._spec.security)
            self._pipeline.on_work(self._poke)
            if self._spec.share_answers:
                loop = asyncio.get_running_loop()
                self._pipeline.keep_answered(
                    lambda: loop.call_soon_threadsafe(self._report_answered_soon))
        except Exception as error:
            logger.exception("could not open the event pipeline")
            self._finish(Exit.failed(Failure(permanent=False, message=f"event pipeline: {error}")))
            return
        self._pipeline_task = asyncio.ensure_future(self._pipeline.run())
        self._pipeline_task.add_done_callback(self._pipeline_ended)

    def _pipeline_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("event pipeline crashed", exc_info=error)
            self._finish(Exit.failed(Failure(permanent=False, message=f"event pipeline: {error}")))

    async def _hold_connection(self) -> None:
        assert self._pipeline is not None
        spec = self._spec
        try:
            self._connection = LarkConnection(
                self._bot,
                self._pipeline.sdk_event_handler(),
                endpoint_timeout=spec.endpoint_timeout,
                silence_pings=spec.silence_pings,
                log_level=spec.log_level,
            )
            await self._connection.serve(self._on_connected)
        except Exception as error:
            self._finish(Exit.failed(classify(error)))

    def _on_connected(self) -> None:
        self._connected_epoch = time.time()
        logger.info("connected: handshake done and the platform answers pings")
        self._report(ConnState.CONNECTED)
        self._warm_up()

    def _warm_up(self) -> None:
        """Token fetch off the event path (EventPipeline.warm_up; never fails the session)."""
        if self._pipeline is not None:
            task = asyncio.ensure_future(self._pipeline.warm_up())
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    def _report(
        self,
        state: ConnState,
        error: str | None = None,
        code: int | None = None,
        permanent: bool = False,
    ) -> None:
        """Change the reported state and tell the supervisor now, not at the next heartbeat.

        A full heartbeat goes first, still with the old state, so the supervisor
        never holds the new state without the fields that come with it: the
        heartbeat brings connected_epoch and the counters, the StateChanged the
        state with its error text and code, in one change record.
        """
        self._poke()
        self._send(self._heartbeat_message())
        self._state = state
        self._send(
            StateChanged(
                bot_id=self._bot.id,
                incarnation=self._spec.incarnation,
                state=state,
                error=error,
                code=code,
                permanent=permanent,
            )
        )

    async def _heartbeat(self) -> None:
        """Without a board: a full heartbeat message every interval (the supervisor pings)."""
        while True:
            self._send(self._heartbeat_message())
            self._report_answered()
            await asyncio.sleep(self._spec.heartbeat_interval)

    def _start_beats(self, board: LivenessBoard) -> None:
        """With a board: one store per beat proves the loop alive, the supervisor's
        slot proves it alive, and a heartbeat message goes only when a figure changed.

        At rest this is the worker's only wake-up besides the platform's pings, so it is
        a plain timer callback rather than a task sleeping in a loop: no task step, no
        future per beat (each wake of 1,000 idle workers is paid 1,000 times a second).
        Once a beat finds nothing new, the next comes after `idle_beat_interval`
        (worker/beats.py): the supervisor then reads in /proc that the idle loop waits
        for I/O instead of waking it.
        """
        spec = self._spec
        board.claim(spec.liveness_slot, spec.liveness_token)
        supervisor = BeatWatch(spec.supervisor_token, time.monotonic())

        def beat() -> bool | None:
            try:
                board.beat(spec.liveness_slot, spec.liveness_token)
                if supervisor.look(board, SUPERVISOR_SLOT, time.monotonic()):
                    self._watch.seen_alive()
                reason = self._watch.check()
                if reason is not None:
                    self._finish(Exit.supervisor_gone(reason))
                    return None
                news = self._figures() != self._reported
                if news:
                    self._send(self._heartbeat_message())
                self._report_answered()
                return news or self._working()
            except Exception as error:
                logger.exception("liveness beat failed")
                self._finish(Exit.failed(Failure(permanent=False, message=f"beat: {error}")))
                return None

        self._beats = BeatTimer(beat, spec.heartbeat_interval,
                                spec.idle_beat_interval or spec.heartbeat_interval)
        self._beats.start()

    def _working(self) -> bool:
        """A handler or a request is under way: its end changes the figures, which must
        be reported within a beat, so the beat stays fast until it is done."""
        return bool(self._requests) or (self._pipeline is not None and self._pipeline.busy())

    def _poke(self) -> None:
        """The worker does something: beat often again (worker/beats.py)."""
        if self._beats is not None:
            self._beats.poke()

    def _report_answered_soon(self) -> None:
        """Events were answered: report them within ANSWERED_REPORT_S, one message for
        all answered meanwhile (the other nodes' dedup waits for it; a beat is 2.5 s)."""
        if self._answered_timer is None:
            def report() -> None:
                self._answered_timer = None
                self._report_answered()

            self._answered_timer = asyncio.get_running_loop().call_later(
                ANSWERED_REPORT_S, report)

    def _report_answered(self) -> None:
        """Cluster mode: the events answered since the last report, in one message."""
        keys = self._pipeline.take_answered() if self._pipeline is not None else []
        if keys:
            self._send(Answered(bot_id=self._bot.id, incarnation=self._spec.incarnation,
                                keys=keys))

    def _figures(self) -> tuple[object, ...]:
        """What a heartbeat reports, cheaply: the histograms move only with these."""
        activity = self._activity()
        return (*activity, self._private_memory.bytes(activity))

    def _activity(self) -> tuple[object, ...]:
        """State and counters: what changes when the worker does something."""
        head = (self._state, self._connected_epoch)
        if self._pipeline is None:
            return head
        counters = self._pipeline.counters
        return (*head, counters.last_event_epoch, counters.counts.copy())

    def _heartbeat_message(self) -> Heartbeat:
        activity = self._activity()
        private_bytes = self._private_memory.bytes(activity)
        self._reported = (*activity, private_bytes)
        message = Heartbeat(
            bot_id=self._bot.id,
            incarnation=self._spec.incarnation,
            state=self._state,
            connected_epoch=self._connected_epoch,
            private_bytes=private_bytes,
        )
        if self._pipeline is not None:
            counters = self._pipeline.counters
            message.last_event_epoch = counters.last_event_epoch
            message.counts = counters.counts.copy()
            message.ack_latency = counters.ack_latency.snapshot()
            message.reply_latency = counters.reply_latency.snapshot()
        return message

    async def _watch_supervisor(self) -> None:
        self._finish(Exit.supervisor_gone(await self._watch.gone()))

    async def _listen(self) -> None:
        while True:
            message = await self._control.receive()
            self._watch.seen_alive()
            self._poke()
            match message:
                case Ping():
                    pass
                case Stop():
                    self._finish(Exit.stopped("stop requested", message.grace))
                case Deliver() | Send() | RetryDeadLetter():
                    self._serve_request(message)

    def _serve_request(self, message: Deliver | Send | RetryDeadLetter) -> None:
        """Each request runs in its own task: a slow handler never delays heartbeats."""
        task = asyncio.ensure_future(self._answer(message))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _answer(self, message: Deliver | Send | RetryDeadLetter) -> None:
        ident = {"bot_id": self._bot.id, "incarnation": self._spec.incarnation}
        pipeline = self._pipeline
        if pipeline is None:
            return
        reply: DeliverResult | SendResult | RetryResult
        try:
            match message:
                case Deliver():
                    status, body, content_type = await pipeline.handle_webhook(
                        message.headers, message.body
                    )
                    reply = DeliverResult(
                        **ident,
                        request_id=message.request_id,
                        status=status,
                        body=body,
                        content_type=content_type,
                    )
                case Send():
                    replies = message.replies or parse_result(message.text)
                    ok, message_ids, code, error = await pipeline.send(
                        message.receive_id, message.receive_id_type, replies, message.uuid
                    )
                    reply = SendResult(
                        **ident,
                        request_id=message.request_id,
                        ok=ok,
                        message_id=message_ids[0] if message_ids else None,
                        message_ids=message_ids,
                        code=code,
                        error=error,
                    )
                case RetryDeadLetter():
                    ok, error = await pipeline.retry_dead_letter(message.event_id)
                    reply = RetryResult(**ident, request_id=message.request_id, ok=ok, error=error)
        except Exception as error:
            logger.exception("%s %s failed", type(message).__name__, message.request_id)
            reply = failed_reply(message, self._bot.id, self._spec.incarnation,
                                 f"{type(error).__name__}: {error}", 500)
        self._send(reply)

    async def _wind_down(self, outcome: Exit) -> None:
        """Report, close the connection, let the pipeline finish its write, all within the grace."""
        deadline = time.monotonic() + max(outcome.grace - GRACE_MARGIN, outcome.grace / 2)
        if outcome.state is not None:
            self._report(outcome.state, outcome.error, outcome.error_code, outcome.permanent)
        if self._connection is not None:
            await _bounded(self._connection.close(), deadline, "closing the connection")
        if outcome.code == exitcodes.STOPPED and self._pipeline is not None:
            await _bounded(self._drain(self._pipeline), deadline, "draining the spool")
        if self._pipeline_task is not None:
            self._pipeline_task.cancel()
            await _bounded(asyncio.wait({self._pipeline_task}), deadline, "stopping the consumer")
        if self._pipeline is not None:
            await _bounded(self._pipeline.close(), deadline, "closing the event pipeline")
        self._report_answered()
        if self._beats is not None:
            self._beats.cancel()
        if self._answered_timer is not None:
            self._answered_timer.cancel()
        pending = [*self._tasks, *self._requests]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    async def _drain(pipeline: EventPipeline) -> None:
        """A requested stop answers what was ACKed before it closes: no new event comes
        in (the connection is closed), so a handover to another node leaves nothing
        behind in this spool unless the grace runs out first. Events that stop making
        progress (a failing handler in retry backoff) are left after DRAIN_STALL."""
        counts = pipeline.counters.counts
        last, progress_mono = counts.pending, time.monotonic()
        while counts.pending > 0 and time.monotonic() - progress_mono < DRAIN_STALL:
            await asyncio.sleep(DRAIN_POLL)
            if counts.pending < last:
                last, progress_mono = counts.pending, time.monotonic()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A task that lives as long as the session; if it crashes, the session ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("worker task crashed", exc_info=error)
        self._finish(Exit.failed(Failure(permanent=False, message=f"worker task: {error}")))

    def _send(self, message: Any) -> None:
        self._control.send(message)


async def _bounded(awaitable: Awaitable[Any], deadline: float, what: str) -> None:
    """Await a wind-down step until `deadline` (monotonic); a stuck step is abandoned."""
    try:
        await asyncio.wait_for(awaitable, max(deadline - time.monotonic(), 0.01))
    except TimeoutError:
        logger.warning("%s did not finish before the grace ran out", what)
    except Exception:
        logger.exception("%s failed", what)
