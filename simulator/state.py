"""All simulator state, held on one object per app instance so several simulators can
share a process (tests) without globals."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_PING_INTERVAL = 120
DEFAULT_RECONNECT_INTERVAL = 120
DEFAULT_RECONNECT_NONCE = 30
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_ACK_TIMEOUT = 3.0
DEFAULT_REDELIVER_SCHEDULE = (15.0, 300.0, 3600.0, 21600.0)
DEFAULT_TOKEN_EXPIRE = 7200
DEFAULT_UUID_TTL = 3600.0
"""The create/reply API docs: a uuid deduplicates sends for one hour."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _number(value: float) -> int:
    """Always a JSON integer, as the platform sends: Go and Node clients reject 1.0 or 0.5."""
    return int(value)


@dataclass
class ImErrorFault:
    count: int
    code: int
    status: int
    msg: str
    reset: int | None = None
    """Seconds sent in the `x-ogw-ratelimit-reset` header, when set."""


@dataclass
class EndpointErrorFault:
    """The endpoint answers this platform code (e.g. 1000040351, wrong domain)."""

    code: int
    msg: str
    status: int


@dataclass
class Connection:
    """One live WebSocket of an app; `device_id` is what the SDK logs as conn_id."""

    app_id: str
    device_id: str
    service_id: int
    ws: web.WebSocketResponse
    connected_at: float = field(default_factory=time.time)
    pending_pongs: set[asyncio.Task[None]] = field(default_factory=set)
    """Pongs held back by the `pongDelay` fault, cancelled when the socket closes."""


@dataclass
class Delivery:
    """One event as the platform keeps it until a 200 ACK: same event_id on every attempt."""

    event_id: str
    payload: bytes
    parts: int
    attempt: int = 0
    seq_id: int | None = None
    timer: asyncio.TimerHandle | None = None
    done: bool = False
    sent_at: float | None = None
    """time.time() just before the current attempt's first frame left."""
    ack_waiter: asyncio.Future[dict[str, Any]] | None = None
    """Set when a pusher waits for the first ACK (`waitAck`): resolved with its entry."""
    frame_type: str = "event"
    """`card` sends an old-style card callback frame, which every SDK drops unACKed."""


@dataclass
class App:
    app_id: str
    app_secret: str
    ping_interval: float = DEFAULT_PING_INTERVAL
    reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL
    reconnect_nonce: float = DEFAULT_RECONNECT_NONCE
    reconnect_count: int = -1
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    redeliver_schedule: tuple[float, ...] = DEFAULT_REDELIVER_SCHEDULE
    token_expire: int = DEFAULT_TOKEN_EXPIRE
    verification_token: str = ""
    encrypt_key: str = ""
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS
    tenant_key: str = field(default_factory=lambda: secrets.token_hex(8))
    bot_open_id: str = field(default_factory=lambda: "ou_" + secrets.token_hex(16))
    bot_name: str = ""
    uuid_ttl: float = DEFAULT_UUID_TTL
    # faults
    endpoint_mode: str = "ok"
    handshake_mode: str = "ok"
    blackhole: bool = False
    im_errors: ImErrorFault | None = None
    endpoint_error: EndpointErrorFault | None = None
    pong_delay: float = 0.0
    rate_limits: bool = True
    """Refuse sends past the platform's limits (simulator/limits.py), as the platform does."""
    endpoint_released: asyncio.Event = field(default_factory=asyncio.Event)
    # observations
    connections: dict[str, Connection] = field(default_factory=dict)
    handshakes: int = 0
    refused_handshakes: int = 0
    endpoint_calls: int = 0
    token_requests: int = 0
    bot_info_calls: int = 0
    pings: int = 0
    pongs: int = 0
    acked: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, Delivery] = field(default_factory=dict)
    pending: dict[int, Delivery] = field(default_factory=dict)
    sent_by_uuid: dict[str, dict[str, Any]] = field(default_factory=dict)
    chats: dict[str, str] = field(default_factory=dict)
    threads: dict[str, str] = field(default_factory=dict)
    """message_id -> thread_id of the pushed messages that are in a thread."""
    limits: Any = None
    """The app's send windows (simulator/limits.py), made on first use."""
    refusals: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    card_actions: list[dict[str, Any]] = field(default_factory=list)
    tenant_token: tuple[str, float] | None = None
    app_token: tuple[str, float] | None = None

    def client_config(self) -> dict[str, int | float]:
        """The ClientConfig sent in the endpoint answer and every pong: all four fields,
        always, since the Python SDK turns a missing one into None and its ping loop dies."""
        return {
            "PingInterval": _number(self.ping_interval),
            "ReconnectCount": self.reconnect_count,
            "ReconnectInterval": _number(self.reconnect_interval),
            "ReconnectNonce": _number(self.reconnect_nonce),
        }

    def info(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "connections": len(self.connections),
            "handshakes": self.handshakes,
            "refusedHandshakes": self.refused_handshakes,
            "endpointCalls": self.endpoint_calls,
            "tokenRequests": self.token_requests,
            "botInfoCalls": self.bot_info_calls,
            "botOpenId": self.bot_open_id,
            "botName": self.bot_name or self.app_id,
            "pings": self.pings,
            "pongs": self.pongs,
            "blackhole": self.blackhole,
            "pongDelay": _number(self.pong_delay),
            "endpoint": self.endpoint_mode,
            "maxConnections": self.max_connections,
            "acked": list(self.acked),
            "sent": list(self.sent),
            "rateLimits": self.rate_limits,
            "refusals": list(self.refusals),
            "updates": list(self.updates),
            "uploads": list(self.uploads.values()),
            "reactions": list(self.reactions),
            "cardActions": list(self.card_actions),
        }


@dataclass
class Token:
    value: str
    app_id: str
    expires_at: float


class SimState:
    """Registry of apps, issued tickets and tokens for one simulator instance."""

    def __init__(self) -> None:
        self.apps: dict[str, App] = {}
        self.tickets: dict[str, str] = {}
        self.tokens: dict[str, Token] = {}
        self.closing = asyncio.Event()
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def issue_ticket(self, app_id: str) -> str:
        """A connect ticket bound to the app, so the WS handshake knows whose socket it is."""
        ticket = uuid.uuid4().hex
        self.tickets[ticket] = app_id
        return ticket

    def issue_token(self, app: App, kind: str) -> tuple[str, int]:
        """Like the platform: reuse the current token while it has more than 30 min left,
        else mint a new one; older tokens stay valid until they expire."""
        now = time.monotonic()
        current = app.tenant_token if kind == "tenant" else app.app_token
        if current is not None and current[1] - now > 1800:
            return current[0], int(current[1] - now)
        prefix = "t-" if kind == "tenant" else "a-"
        value = prefix + secrets.token_hex(20)
        expires_at = now + app.token_expire
        self.tokens[value] = Token(value, app.app_id, expires_at)
        if kind == "tenant":
            app.tenant_token = (value, expires_at)
        else:
            app.app_token = (value, expires_at)
        return value, app.token_expire

    def revoke_tokens(self, app: App) -> int:
        """Invalidate every live token of the app before its expiry (the platform answers
        99991663 for them from now on); the next token request mints a new one."""
        revoked = [v for v, t in self.tokens.items() if t.app_id == app.app_id]
        for value in revoked:
            del self.tokens[value]
        app.tenant_token = None
        app.app_token = None
        return len(revoked)

    def app_for_token(self, value: str) -> App | None:
        token = self.tokens.get(value)
        if token is None or token.expires_at <= time.monotonic():
            return None
        return self.apps.get(token.app_id)


STATE_KEY = web.AppKey("sim_state", SimState)
