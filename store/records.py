"""What the store hands out and the errors it raises, shared by every implementation."""

import hashlib
import secrets
from dataclasses import dataclass

from shared.botconfig import BotConfig

ADMIN_TOKEN_ENV = "LARKFLEET_ADMIN_TOKEN"
ADMIN_NAME = "admin"


class NotFound(KeyError):
    """No such bot or user (or not one the caller owns: the API cannot tell the two apart)."""


class Conflict(Exception):
    """The change would break a uniqueness rule (same appId twice for one owner, ...)."""


@dataclass(frozen=True)
class User:
    id: str
    name: str
    is_admin: bool
    created: float


@dataclass(frozen=True)
class BotRecord:
    """A bot as stored: its full config (secrets decrypted) plus ownership and wishes."""

    config: BotConfig
    owner: str
    desired_connected: bool
    created: float
    updated: float
    shared: bool = False
    """An admin allowed other bots on the same appId (store: one bot per app otherwise)."""


SCOPES = ("admin", "owner", "viewer")
"""Token scopes: admin (an admin user's full rights), owner (its own bots), viewer (read only)."""


@dataclass(frozen=True)
class TokenRecord:
    """One live token as listed: never the token itself (only its hash is stored)."""

    id: str
    user_id: str
    scope: str
    kind: str
    created: float
    expires: float | None
    last_used: float | None


@dataclass(frozen=True)
class Caller:
    """Who a token authenticates: the user, the token's id and its scope."""

    user: User
    token_id: str
    scope: str

    @property
    def is_admin(self) -> bool:
        """Admin rights need an admin user *and* an admin-scoped token."""
        return self.user.is_admin and self.scope == "admin"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change: when (epoch s), who, what, on what, how it ended. Never a secret."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str


@dataclass(frozen=True)
class BotBrief:
    """What routing and ownership checks need of a bot, read without decrypting anything."""

    id: str
    owner: str
    use_websocket: bool
    desired_connected: bool


def token_hash(token: str) -> str:
    """The form a token is stored and looked up in: hex SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "lf_" + secrets.token_urlsafe(32)


def new_user_id() -> str:
    return "usr_" + secrets.token_hex(6)


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(6)


def new_bot_id() -> str:
    return "bot_" + secrets.token_hex(6)
