"""The messages supervisor and workers exchange over ZeroMQ (msgpack, tagged union).

Every message a worker sends carries its bot id and incarnation, so the
supervisor can drop what a stale incarnation still says. Anything that does
not decode is logged and dropped by the receiver (see `decode`).
"""

from http import HTTPStatus

import msgspec

from shared.botconfig import BotConfig
from shared.counts import EventCounts
from shared.results import Reply
from shared.security import SecurityPolicy
from shared.states import ConnState


class _Msg(msgspec.Struct, tag_field="t", kw_only=True):
    pass


class _FromWorker(_Msg):
    bot_id: str
    incarnation: int


class Hello(_FromWorker, tag="hello"):
    """First words of a worker: starts its heartbeat clock."""

    pid: int
    loop_tid: int = 0
    """The kernel's id of the thread running the worker's event loop (0: not told).
    The supervisor reads that thread's /proc view when a beat is late
    (supervisor/procview.py)."""


ACK_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds (s) of the ACK latency histogram: the spool write inside the SDK callback."""

REPLY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (s) of the reply latency histogram: event spooled to reply accepted."""


class Histogram(msgspec.Struct, kw_only=True):
    """Cumulative observations since the worker started, in fixed buckets.

    `buckets[i]` counts values in (bounds[i-1], bounds[i]]; one extra last
    entry counts values above the highest bound. Not cumulative per bucket,
    so two histograms over the same bounds add element-wise.
    """

    buckets: list[int] = msgspec.field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def plus(self, other: "Histogram") -> "Histogram":
        """The element-wise sum; an empty side (no buckets yet) counts as zeros."""
        size = max(len(self.buckets), len(other.buckets))
        mine = self.buckets + [0] * (size - len(self.buckets))
        theirs = other.buckets + [0] * (size - len(other.buckets))
        return Histogram(
            buckets=[a + b for a, b in zip(mine, theirs, strict=True)],
            sum=self.sum + other.sum,
            count=self.count + other.count,
        )


class Heartbeat(_FromWorker, tag="hb"):
    """The worker's real view of its connection, sent when any of it changed.

    The counts and histograms are cumulative for this incarnation; the
    supervisor adds up incarnations so exported counters never go back.
    """

    state: ConnState
    connected_epoch: float | None = None
    last_event_epoch: float | None = None
    counts: EventCounts = msgspec.field(default_factory=EventCounts)
    private_bytes: int = 0
    """USS in bytes, resampled about once a minute (worker/liveness.py PrivateMemory)."""
    ack_latency: Histogram = msgspec.field(default_factory=Histogram)
    reply_latency: Histogram = msgspec.field(default_factory=Histogram)


class StateChanged(_FromWorker, tag="state"):
    """The connection state changed; `permanent` errors stop all retries."""

    state: ConnState
    error: str | None = None
    code: int | None = None
    permanent: bool = False


class Ping(_Msg, tag="ping"):
    """Supervisor liveness: a worker that hears none for a while exits."""


class Stop(_Msg, tag="stop"):
    """Close the connection, finish the current spool write, exit 0 within `grace`."""

    grace: float = 10.0


class Deliver(_Msg, tag="deliver"):
    """A webhook request for the worker to verify, decrypt and spool."""

    request_id: str
    headers: dict[str, str]
    body: bytes


class DeliverResult(_FromWorker, tag="deliver_result"):
    request_id: str
    status: int
    body: bytes
    content_type: str = "application/json"


class Send(_Msg, tag="send"):
    """Outbound messages from the API, sent through the bot in order (shared/results.py).

    `text` is the older form of one text message, still understood; `uuid` is
    the caller's key of the first message (shared/idempotency.py).
    """

    request_id: str
    receive_id: str
    receive_id_type: str
    text: str = ""
    uuid: str | None = None
    replies: list[Reply] = msgspec.field(default_factory=list)


class SendResult(_FromWorker, tag="send_result"):
    """`message_id` is the first message's id; `message_ids` every one sent, in order."""

    request_id: str
    ok: bool
    message_id: str | None = None
    code: int | None = None
    error: str | None = None
    message_ids: list[str] = msgspec.field(default_factory=list)
    timed_out: bool = False
    """Made by the supervisor, which stopped waiting: the worker may still send it."""


class RetryDeadLetter(_Msg, tag="retry_dead"):
    """Put a dead-lettered event back in the queue."""

    request_id: str
    event_id: str


class RetryResult(_FromWorker, tag="retry_result"):
    request_id: str
    ok: bool
    error: str | None = None
    timed_out: bool = False
    """Made by the supervisor, which stopped waiting: the worker may still queue it."""


class Answered(_FromWorker, tag="answered"):
    """Cluster mode: events this worker answered (or ignored for good) since its last
    report, as (event id, IM message id or "") pairs, for the other nodes' dedup.
    Sent 0.2 s after the first of them (worker/session.py), and once more as it ends."""

    keys: list[tuple[str, str]] = msgspec.field(default_factory=list)


ToWorker = Ping | Stop | Deliver | Send | RetryDeadLetter
FromWorker = (Hello | Heartbeat | StateChanged | DeliverResult | SendResult | RetryResult
              | Answered)
Request = Deliver | Send | RetryDeadLetter
Reply = DeliverResult | SendResult | RetryResult

NO_WORKER = 0
"""The incarnation on a reply the supervisor made itself because no worker took the request."""


def failed_reply(
    request: Request, bot_id: str, incarnation: int, error: str, http_status: int
) -> Reply:
    """The request's own reply type, saying it failed, so every caller gets an answer.

    A webhook push gets `http_status` with the status phrase as its body: the
    error text stays in our logs and replies, never goes back to the platform.
    504 (the worker did not answer in time) marks a send or a retry `timed_out`:
    unlike "no worker", its outcome is unknown.
    """
    timed_out = http_status == HTTPStatus.GATEWAY_TIMEOUT
    match request:
        case Deliver():
            body = msgspec.json.encode({"msg": HTTPStatus(http_status).phrase})
            return DeliverResult(bot_id=bot_id, incarnation=incarnation,
                                 request_id=request.request_id, status=http_status, body=body)
        case Send():
            return SendResult(bot_id=bot_id, incarnation=incarnation,
                              request_id=request.request_id, ok=False, error=error,
                              timed_out=timed_out)
        case RetryDeadLetter():
            return RetryResult(bot_id=bot_id, incarnation=incarnation,
                               request_id=request.request_id, ok=False, error=error,
                               timed_out=timed_out)


class WorkerSpec(msgspec.Struct, kw_only=True):
    """What the supervisor hands a new worker process (msgpack bytes across the fork)."""

    bot: BotConfig
    incarnation: int
    data_dir: str
    control_endpoint: str
    heartbeat_interval: float = 1.0
    idle_beat_interval: float = 0.0
    """Beat period once a beat found nothing new (0: `heartbeat_interval` always). Longer
    only when the supervisor can see, in /proc, that an idle loop waits for I/O
    (supervisor/settings.py, `SupervisorSettings.beat_intervals`)."""
    supervisor_timeout: float = 3.0
    liveness_path: str = ""
    """The supervisor's liveness board (shared/liveness_board.py); empty: heartbeats and
    pings travel as messages instead, as they did before the board."""
    liveness_slot: int = 0
    liveness_token: int = 0
    """This incarnation's slot on the board and the token that marks its beats as its own."""
    supervisor_token: int = 0
    """The token the supervisor beats slot 0 with."""
    endpoint_timeout: float = 10.0
    silence_pings: int = 3
    log_level: str = "INFO"
    event_max_attempts: int = 5
    """Handler attempts before an event becomes a dead letter."""
    event_retry_base: float = 1.0
    """First retry delay (s) of an event; doubles per attempt."""
    proxy: str = ""
    """The service's proxy setting for platform connections ("" = the environment's);
    a bot's own `options.proxy` wins (worker/proxy.py)."""
    security: SecurityPolicy = msgspec.field(default_factory=SecurityPolicy)
    """The operator's policy as it applies to this bot's owner (shared/security.py)."""
    share_answers: bool = False
    """Cluster mode: report answered events (Answered), so a redelivery to another node
    after a move is recognised there; one host keeps its dedup in the spool alone."""


_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)
_spec = msgspec.msgpack.Decoder(WorkerSpec)


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def decode_to_worker(data: bytes) -> ToWorker:
    """Raises msgspec.DecodeError / ValidationError on anything malformed."""
    return _to_worker.decode(data)


def decode_from_worker(data: bytes) -> FromWorker:
    """Raises msgspec.DecodeError / ValidationError on anything malformed."""
    return _from_worker.decode(data)


def decode_spec(data: bytes) -> WorkerSpec:
    return _spec.decode(data)


def worker_identity(bot_id: str, incarnation: int) -> bytes:
    """The DEALER identity: bot id plus incarnation, so a stale worker is recognisable."""
    return f"{bot_id}:{incarnation}".encode()
