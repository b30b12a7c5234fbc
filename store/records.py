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


def token_hash(token: str) -> str:
    """The form a token is stored and looked up in: hex SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "lf_" + secrets.token_urlsafe(32)


def new_user_id() -> str:
    return "usr_" + secrets.token_hex(6)


def new_bot_id() -> str:
    return "bot_" + secrets.token_hex(6)
