"""The status of one bot as the API reports it (architecture.md, ws/status)."""

import msgspec

from shared.states import ConnState


class BotStatus(msgspec.Struct, rename="camel", kw_only=True):
    """One entry of `GET /api/feishu/ws/status`. Times are ISO-8601 UTC or null."""

    bot_id: str
    state: ConnState
    connected_at: str | None = None
    last_heartbeat: str | None = None
    error: str | None = None
    error_code: int | None = None
    pid: int | None = None
    restarts: int = 0
    attempt: int = 0
    next_retry_at: str | None = None
    events_received: int = 0
    replies_sent: int = 0
    pending: int = 0
    dead_letters: int = 0
    flapping: bool = False
    rss_bytes: int = 0
    owner: str | None = None
