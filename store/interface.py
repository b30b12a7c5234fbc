"""The store's interface: every operation the supervisor and the API may ask of it.

One implementation per database engine (`store.sqlite.SQLiteStore` today); the
rest of larkfleet types against `Store` only, so another engine slots in behind
the same calls. The store is the one owner of bot mutations: nothing else
writes a bot row. Every call is a short synchronous transaction; secrets come
back decrypted and are registered with the log redactor on the way.
"""

from typing import Any, Protocol

from shared.botconfig import BotConfig
from store.records import AuditEntry, BotBrief, BotRecord, Caller, TokenRecord, User


class Store(Protocol):
    def close(self) -> None:
        """Release the connection(s); the store is unusable afterwards."""

    # -- schema ---------------------------------------------------------------

    def schema_version(self) -> int:
        """The applied schema version (0: empty database). Raises on a broken connection."""

    def migrate(self) -> int:
        """Apply every migration newer than the stored version; returns the latest version."""

    # -- users and tokens -------------------------------------------------------

    def bootstrap_admin(self) -> User:
        """Make sure an admin exists and has a usable token (env variable or token file)."""

    def create_user(self, name: str, is_admin: bool = False) -> tuple[User, str]:
        """A new user and its first token; the token is returned here and never again."""

    def get_user(self, user_id: str) -> User:
        """The user; raises NotFound."""

    def list_users(self) -> list[User]:
        """Every user, oldest first."""

    def delete_user(self, user_id: str) -> None:
        """Raises NotFound, or Conflict while it owns bots or is the last admin."""

    def issue_token(self, user_id: str, kind: str = "user") -> str:
        """A fresh token for the user (only its hash is kept); raises NotFound."""

    def revoke_tokens(self, user_id: str) -> int:
        """Revoke every live token of the user; returns how many. Raises NotFound."""

    def revoke_token(self, token: str) -> bool:
        """Revoke one token; False when it was not live."""

    def user_for_token(self, token: str) -> User | None:
        """The live, unexpired token's user, or None."""

    def issue_scoped_token(
        self, user_id: str, scope: str | None = None, expires: float | None = None,
        kind: str = "user",
    ) -> tuple[TokenRecord, str]:
        """A token with a scope (None: admin for an admin, else owner) and an expiry (epoch s);
        raises NotFound, ValueError (a scope the user cannot hold)."""

    def list_tokens(self, user_id: str) -> list[TokenRecord]:
        """The user's unrevoked tokens (never the tokens themselves); raises NotFound."""

    def revoke_token_id(self, user_id: str, token_id: str) -> bool:
        """Revoke one of the user's tokens by id; False when it was not live."""

    def authenticate(self, token: str) -> Caller | None:
        """The live, unexpired token's caller (user, token id, scope); notes its last use."""

    # -- bots -------------------------------------------------------------------

    def create_bot(self, owner: str, config: BotConfig) -> BotRecord:
        """Store a new bot under `owner` with a new id (`config.id` is ignored).

        Raises Conflict when another bot has that appId (unless every such bot is shared).
        """

    def get_bot(self, bot_id: str, owner: str | None = None) -> BotRecord:
        """The bot if `owner` owns it (None: any owner); raises NotFound."""

    def bot_brief(self, bot_id: str, owner: str | None = None) -> BotBrief:
        """Existence, owner and mode of the bot, without decrypting secrets; raises NotFound
        (also when `owner` is given and does not own it). For per-request ownership checks."""

    def list_bots(self, owner: str | None = None) -> list[BotRecord]:
        """The owner's bots (None: all), oldest first, secrets decrypted."""

    def bot_ids(self, owner: str | None = None) -> list[tuple[str, str]]:
        """(bot id, owner) pairs, oldest first, without decrypting anything."""

    def update_bot(self, bot_id: str, owner: str | None, **changes: Any) -> BotRecord:
        """Change BotConfig fields (not `id`); raises NotFound, Conflict, ValueError."""

    def delete_bot(self, bot_id: str, owner: str | None = None) -> None:
        """Forget the bot; raises NotFound."""

    def bot_config(self, bot_id: str) -> BotConfig:
        """The bot's config with secrets decrypted, for a worker; raises NotFound."""

    def set_desired_connected(self, bot_id: str, connected: bool) -> None:
        """Persist the user's connect/disconnect wish; raises NotFound."""

    def desired_bots(self) -> list[str]:
        """Bots to keep a worker for (asked to connect, or in webhook mode), oldest first."""

    def is_desired(self, bot_id: str) -> bool:
        """Whether `bot_id` is one of `desired_bots()` (False for a missing bot)."""

    def reseal_secrets(self) -> int:
        """Re-encrypt every stored secret under the key that encrypts; returns how many bots."""

    def set_shared(self, bot_id: str, shared: bool) -> BotRecord:
        """Let other bots use this bot's appId (admin decision); raises NotFound."""

    # -- audit ------------------------------------------------------------------

    def record_audit(self, at: float, actor: str, action: str, target: str, outcome: str) -> None:
        """Append one audit entry (epoch seconds; no secret in any field)."""

    def audit_entries(self, limit: int, before: int | None = None) -> list[AuditEntry]:
        """Newest first, at most `limit`, only entries with id < `before` when given."""
