"""The registry: users, their tokens, their bots and each bot's desired state (SQLite).

The supervisor reads it to know which bots to bring back on boot and what
config to hand each worker; the API reads and writes it for every request.
Calls are tiny single statements, so plain synchronous sqlite3 on one
connection (WAL, behind a lock) is enough and keeps the code obvious.

Secrets (app secret, verification token, encrypt key, handler secret fields)
are stored Fernet-encrypted; tokens are stored as SHA-256 hashes only. Every
secret and token that passes through here is registered with the log
redactor, so this process never writes one to its log.
"""

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

from shared.botconfig import SECRET_HANDLER_FIELDS, BotConfig, EchoHandler, HandlerSpec
from shared.logs import redactor
from shared.paths import DataPaths
from supervisor.secrets_box import SecretBox, SecretKeyError, load_key

logger = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "LARKFLEET_ADMIN_TOKEN"
ADMIN_NAME = "admin"
_KEY_CANARY = "larkfleet-secret-key-check"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind TEXT NOT NULL DEFAULT 'user',
        created REAL NOT NULL,
        revoked REAL
    );
    CREATE INDEX tokens_user ON tokens (user_id);
    CREATE TABLE bots (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        app_id TEXT NOT NULL,
        app_secret TEXT NOT NULL,
        verification_token TEXT NOT NULL DEFAULT '',
        encrypt_key TEXT NOT NULL DEFAULT '',
        use_websocket INTEGER NOT NULL DEFAULT 1,
        domain TEXT NOT NULL DEFAULT 'feishu',
        handler TEXT NOT NULL,
        desired_connected INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE UNIQUE INDEX bots_owner_app ON bots (owner, app_id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
"""Ordered schema steps; step N brings the schema to version N. Only ever append."""


_DESIRED = "desired_connected = 1 OR use_websocket = 0"
"""The bots the supervisor keeps a worker for, as one SQL condition for every query."""


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
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "lf_" + secrets.token_urlsafe(32)


class Registry:
    """One SQLite registry per data directory; create it once per process."""

    def __init__(self, paths: DataPaths) -> None:
        """Open (creating and migrating) the registry; the file is 0600 like the key."""
        self.paths = paths
        paths.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        os.close(os.open(paths.registry, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(paths.registry, 0o600)
        self._conn = sqlite3.connect(paths.registry, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self.migrate()
        self._box = SecretBox(load_key(paths.secret_key))
        self._check_key()
        self.bootstrap_admin()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def migrate(self) -> int:
        """Apply every migration newer than the stored version; safe to call any time."""
        current = self.schema_version()
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._transaction() as conn:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            logger.info("registry schema migrated to version %d", version)
        return len(MIGRATIONS)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _check_key(self) -> None:
        """Fail at start, not at the first connect, when the key cannot open stored secrets."""
        rows = self._query("SELECT value FROM meta WHERE key = 'key_check'")
        if not rows:
            with self._transaction() as conn:
                canary = self._box.seal(_KEY_CANARY)
                conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (canary,))
        elif self._box.open(rows[0][0]) != _KEY_CANARY:
            raise SecretKeyError("the secret key does not match this registry")

    # -- users and tokens --------------------------------------------------------

    def bootstrap_admin(self) -> User:
        """Make sure an admin exists and can log in, as the architecture page promises.

        With LARKFLEET_ADMIN_TOKEN set, that token is the admin's (a previous
        value of the variable stops working). Otherwise <data>/admin.token
        (0600) holds a valid admin token, written anew when missing or revoked.
        """
        admins = self._query("SELECT id FROM users WHERE is_admin = 1 ORDER BY created LIMIT 1")
        admin = self.get_user(admins[0][0]) if admins else self.create_user(ADMIN_NAME, True)[0]
        env_token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
        if env_token:
            redactor.add(env_token)
            digest = token_hash(env_token)
            with self._transaction() as conn:
                conn.execute(
                    "UPDATE tokens SET revoked = ?"
                    " WHERE kind = 'env' AND hash != ? AND revoked IS NULL",
                    (time.time(), digest),
                )
                conn.execute(
                    "INSERT INTO tokens (hash, user_id, kind, created) VALUES (?, ?, 'env', ?)"
                    " ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, revoked = NULL",
                    (digest, admin.id, time.time()),
                )
            return admin
        token_file = self.paths.admin_token
        try:
            existing = token_file.read_text().strip()
        except OSError:
            existing = ""
        user = self.user_for_token(existing) if existing else None
        if user is None or not user.is_admin:
            token = self.issue_token(admin.id, kind="file")
            _write_private(token_file, token + "\n")
            logger.info("admin token written to %s", token_file)
        return admin

    def create_user(self, name: str, is_admin: bool = False) -> tuple[User, str]:
        """A new user and its first token; the token is returned here and never again."""
        user_id = "usr_" + secrets.token_hex(6)
        user = User(id=user_id, name=name, is_admin=is_admin, created=time.time())
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO users (id, name, is_admin, created) VALUES (?, ?, ?, ?)",
                (user.id, user.name, int(user.is_admin), user.created),
            )
        return user, self.issue_token(user.id)

    def get_user(self, user_id: str) -> User:
        rows = self._query("SELECT id, name, is_admin, created FROM users WHERE id = ?", (user_id,))
        if not rows:
            raise NotFound(user_id)
        return _user(rows[0])

    def list_users(self) -> list[User]:
        rows = self._query("SELECT id, name, is_admin, created FROM users ORDER BY created")
        return [_user(row) for row in rows]

    def delete_user(self, user_id: str) -> None:
        """Delete a user and its tokens; refused while it owns bots or is the last admin."""
        user = self.get_user(user_id)
        with self._transaction() as conn:
            owned = conn.execute("SELECT count(*) FROM bots WHERE owner = ?", (user_id,)).fetchone()
            if owned[0]:
                raise Conflict(f"user {user_id} still owns {owned[0]} bot(s); delete them first")
            if user.is_admin:
                admins = conn.execute("SELECT count(*) FROM users WHERE is_admin = 1").fetchone()
                if admins[0] <= 1:
                    raise Conflict("the last admin cannot be deleted")
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def issue_token(self, user_id: str, kind: str = "user") -> str:
        """A fresh token for the user; only its hash is kept."""
        self.get_user(user_id)
        token = new_token()
        redactor.add(token)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO tokens (hash, user_id, kind, created) VALUES (?, ?, ?, ?)",
                (token_hash(token), user_id, kind, time.time()),
            )
        return token

    def revoke_tokens(self, user_id: str) -> int:
        """Revoke every live token of the user; returns how many were revoked."""
        self.get_user(user_id)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL",
                (time.time(), user_id),
            )
        return cursor.rowcount

    def revoke_token(self, token: str) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE hash = ? AND revoked IS NULL",
                (time.time(), token_hash(token)),
            )
        return cursor.rowcount > 0

    def user_for_token(self, token: str) -> User | None:
        """The token's user, or None. Lookup by hash: no timing oracle on the token itself."""
        rows = self._query(
            "SELECT u.id, u.name, u.is_admin, u.created"
            " FROM tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.hash = ? AND t.revoked IS NULL",
            (token_hash(token),),
        )
        return _user(rows[0]) if rows else None

    # -- bots ----------------------------------------------------------------------

    def create_bot(self, owner: str, config: BotConfig) -> BotRecord:
        """Store a new bot under `owner`; `config.id` is ignored and a new id is assigned."""
        bot_id = "bot_" + secrets.token_hex(6)
        now = time.time()
        config = msgspec.structs.replace(config, id=bot_id)
        with self._transaction() as conn:
            self._check_app_id(conn, owner, config.app_id, bot_id)
            conn.execute(
                "INSERT INTO bots (id, owner, name, app_id, app_secret, verification_token,"
                " encrypt_key, use_websocket, domain, handler, desired_connected, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (bot_id, owner, *self._columns(config), now, now),
            )
        logger.info("bot %s created for %s", bot_id, owner)
        return BotRecord(config, owner, False, now, now)

    def get_bot(self, bot_id: str, owner: str | None = None) -> BotRecord:
        """The bot, if it exists and `owner` owns it (owner None: any bot, for admins)."""
        sql, params = _BOT_SELECT + " WHERE id = ?", (bot_id,)
        if owner is not None:
            sql, params = sql + " AND owner = ?", (bot_id, owner)
        rows = self._query(sql, params)
        if not rows:
            raise NotFound(bot_id)
        return self._record(rows[0])

    def list_bots(self, owner: str | None = None) -> list[BotRecord]:
        if owner is None:
            rows = self._query(_BOT_SELECT + " ORDER BY created")
        else:
            rows = self._query(_BOT_SELECT + " WHERE owner = ? ORDER BY created", (owner,))
        return [self._record(row) for row in rows]

    def bot_ids(self, owner: str | None = None) -> list[tuple[str, str]]:
        """(bot id, owner) pairs without decrypting anything: cheap for status and metrics."""
        if owner is None:
            return self._query("SELECT id, owner FROM bots ORDER BY created")
        return self._query("SELECT id, owner FROM bots WHERE owner = ? ORDER BY created", (owner,))

    def update_bot(self, bot_id: str, owner: str | None, **changes: Any) -> BotRecord:
        """Change BotConfig fields (name, app_id, app_secret, ..., handler) of an owned bot."""
        unknown = set(changes) - (set(BotConfig.__struct_fields__) - {"id"})
        if unknown:
            raise ValueError(f"not updatable: {unknown}")
        now = time.time()
        with self._transaction():
            current = self.get_bot(bot_id, owner)
            config = msgspec.structs.replace(current.config, **changes)
            self._check_app_id(self._conn, current.owner, config.app_id, bot_id)
            self._conn.execute(
                "UPDATE bots SET name = ?, app_id = ?, app_secret = ?, verification_token = ?,"
                " encrypt_key = ?, use_websocket = ?, domain = ?, handler = ?, updated = ?"
                " WHERE id = ?",
                (*self._columns(config), now, bot_id),
            )
        return BotRecord(config, current.owner, current.desired_connected, current.created, now)

    def delete_bot(self, bot_id: str, owner: str | None = None) -> None:
        with self._transaction() as conn:
            sql, params = "DELETE FROM bots WHERE id = ?", (bot_id,)
            if owner is not None:
                sql, params = sql + " AND owner = ?", (bot_id, owner)
            if conn.execute(sql, params).rowcount == 0:
                raise NotFound(bot_id)
        logger.info("bot %s deleted", bot_id)

    def bot_config(self, bot_id: str) -> BotConfig:
        """The bot's config with secrets decrypted, for the supervisor to hand to a worker."""
        return self.get_bot(bot_id).config

    def set_desired_connected(self, bot_id: str, connected: bool) -> None:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE bots SET desired_connected = ? WHERE id = ?", (int(connected), bot_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(bot_id)

    def desired_bots(self) -> list[str]:
        """Bots the supervisor keeps a worker for: asked to connect, or in webhook mode."""
        rows = self._query(f"SELECT id FROM bots WHERE {_DESIRED} ORDER BY created")
        return [row[0] for row in rows]

    def is_desired(self, bot_id: str) -> bool:
        """Whether `bot_id` is one of `desired_bots()`, without listing them all."""
        return bool(self._query(f"SELECT 1 FROM bots WHERE id = ? AND ({_DESIRED})", (bot_id,)))

    # -- row <-> config ------------------------------------------------------------

    @staticmethod
    def _check_app_id(conn: sqlite3.Connection, owner: str, app_id: str, bot_id: str) -> None:
        clash = conn.execute(
            "SELECT id FROM bots WHERE owner = ? AND app_id = ? AND id != ?",
            (owner, app_id, bot_id),
        ).fetchone()
        if clash:
            raise Conflict(f"appId {app_id!r} is already used by your bot {clash[0]}")

    def _columns(self, config: BotConfig) -> tuple[Any, ...]:
        redactor.add(*config.secrets())
        seal = self._box.seal
        return (
            config.name,
            config.app_id,
            seal(config.app_secret),
            seal(config.verification_token),
            seal(config.encrypt_key),
            int(config.use_websocket),
            config.domain,
            self._seal_handler(config.handler),
        )

    def _record(self, row: tuple[Any, ...]) -> BotRecord:
        (bot_id, owner, name, app_id, app_secret, verification_token, encrypt_key,
         use_websocket, domain, handler, desired, created, updated) = row
        config = BotConfig(
            id=bot_id,
            name=name,
            app_id=app_id,
            app_secret=self._box.open(app_secret),
            verification_token=self._box.open(verification_token),
            encrypt_key=self._box.open(encrypt_key),
            use_websocket=bool(use_websocket),
            domain=domain,
            handler=self._open_handler(handler),
        )
        redactor.add(*config.secrets())
        return BotRecord(config, owner, bool(desired), created, updated)

    def _seal_handler(self, handler: HandlerSpec) -> str:
        data = msgspec.to_builtins(handler)
        for name in _secret_wire_names(type(handler)):
            data[name] = self._box.seal(data.get(name, ""))
        return msgspec.json.encode(data).decode()

    def _open_handler(self, stored: str) -> HandlerSpec:
        data = msgspec.json.decode(stored)
        kind = _HANDLER_TYPES.get(data.get("kind"), EchoHandler)
        for name in _secret_wire_names(kind):
            data[name] = self._box.open(data.get(name, ""))
        return msgspec.convert(data, HandlerSpec)


_BOT_SELECT = (
    "SELECT id, owner, name, app_id, app_secret, verification_token, encrypt_key,"
    " use_websocket, domain, handler, desired_connected, created, updated FROM bots"
)

_HANDLER_TYPES: dict[str, type] = {
    cls.__struct_config__.tag: cls for cls in HandlerSpec.__args__  # type: ignore[attr-defined]
}


def _secret_wire_names(kind: type) -> list[str]:
    """The camelCase names of the handler's secret fields, as they appear in its JSON."""
    secret = set(SECRET_HANDLER_FIELDS.get(kind, ()))
    return [f.encode_name for f in msgspec.structs.fields(kind) if f.name in secret]


def _user(row: tuple[Any, ...]) -> User:
    return User(id=row[0], name=row[1], is_admin=bool(row[2]), created=row[3])


def _write_private(path: os.PathLike[str], text: str) -> None:
    """Write `text` to a file only the owner can read, replacing any previous one."""
    tmp = f"{os.fspath(path)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
