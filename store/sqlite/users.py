"""Users and their tokens in SQLite; tokens are stored as SHA-256 hashes only."""

import logging
import os
import time
from typing import Any

from shared.logs import redactor
from shared.paths import DataPaths
from store.records import (
    ADMIN_NAME,
    ADMIN_TOKEN_ENV,
    SCOPES,
    Caller,
    Conflict,
    NotFound,
    TokenRecord,
    User,
    new_token,
    new_token_id,
    new_user_id,
    token_hash,
)
from store.sqlite.connection import Database

logger = logging.getLogger(__name__)

LAST_USED_EVERY = 60.0
"""A token's last-used time is written at most this often (seconds): not a write per request."""

_LIVE = "t.revoked IS NULL AND (t.expires IS NULL OR t.expires > ?)"


class UserTables:
    """The users and tokens half of SQLiteStore (see store.interface.Store for the contract)."""

    db: Database
    paths: DataPaths

    def bootstrap_admin(self) -> User:
        """Make sure an admin exists and can log in, as the architecture page promises.

        With LARKFLEET_ADMIN_TOKEN set, that token is the admin's (a previous
        value of the variable stops working). Otherwise <data>/admin.token
        (0600) holds a valid admin token, written anew when missing or revoked.
        """
        admins = self.db.query("SELECT id FROM users WHERE is_admin = 1 ORDER BY created LIMIT 1")
        admin = self.get_user(admins[0][0]) if admins else self.create_user(ADMIN_NAME, True)[0]
        env_token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
        if env_token:
            redactor.add(env_token)
            digest = token_hash(env_token)
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE tokens SET revoked = ?"
                    " WHERE kind = 'env' AND hash != ? AND revoked IS NULL",
                    (time.time(), digest),
                )
                conn.execute(
                    "INSERT INTO tokens (hash, id, user_id, kind, scope, created)"
                    " VALUES (?, ?, ?, 'env', 'admin', ?)"
                    " ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, revoked = NULL,"
                    " scope = 'admin', expires = NULL",
                    (digest, new_token_id(), admin.id, time.time()),
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
        user = User(id=new_user_id(), name=name, is_admin=is_admin, created=time.time())
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO users (id, name, is_admin, created) VALUES (?, ?, ?, ?)",
                (user.id, user.name, int(user.is_admin), user.created),
            )
        return user, self.issue_token(user.id)

    def get_user(self, user_id: str) -> User:
        rows = self.db.query(
            "SELECT id, name, is_admin, created FROM users WHERE id = ?", (user_id,)
        )
        if not rows:
            raise NotFound(user_id)
        return _user(rows[0])

    def list_users(self) -> list[User]:
        rows = self.db.query("SELECT id, name, is_admin, created FROM users ORDER BY created")
        return [_user(row) for row in rows]

    def delete_user(self, user_id: str) -> None:
        user = self.get_user(user_id)
        with self.db.transaction() as conn:
            owned = conn.execute("SELECT count(*) FROM bots WHERE owner = ?", (user_id,)).fetchone()
            if owned[0]:
                raise Conflict(f"user {user_id} still owns {owned[0]} bot(s); delete them first")
            if user.is_admin:
                admins = conn.execute("SELECT count(*) FROM users WHERE is_admin = 1").fetchone()
                if admins[0] <= 1:
                    raise Conflict("the last admin cannot be deleted")
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def issue_token(self, user_id: str, kind: str = "user") -> str:
        return self.issue_scoped_token(user_id, kind=kind)[1]

    def issue_scoped_token(
        self, user_id: str, scope: str | None = None, expires: float | None = None,
        kind: str = "user",
    ) -> tuple[TokenRecord, str]:
        """A fresh token (only its hash is kept) and its record.

        `scope` None: `admin` for an admin user, else `owner`. `expires`: epoch
        seconds, None for never. Raises NotFound, or ValueError for a scope the
        user cannot hold (admin for a non-admin) or an unknown one.
        """
        user = self.get_user(user_id)
        scope = scope or ("admin" if user.is_admin else "owner")
        if scope not in SCOPES or (scope == "admin" and not user.is_admin):
            raise ValueError(f"scope {scope!r} is not one this user can hold")
        token = new_token()
        record = TokenRecord(id=new_token_id(), user_id=user_id, scope=scope, kind=kind,
                             created=time.time(), expires=expires, last_used=None)
        redactor.set(_redaction_owner(token_hash(token)), token)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO tokens (hash, id, user_id, kind, scope, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_hash(token), record.id, user_id, kind, scope, record.created, expires),
            )
        return record, token

    def list_tokens(self, user_id: str) -> list[TokenRecord]:
        """The user's tokens that are not revoked (expired ones included), oldest first."""
        self.get_user(user_id)
        rows = self.db.query(
            "SELECT id, user_id, scope, kind, created, expires, last_used FROM tokens"
            " WHERE user_id = ? AND revoked IS NULL ORDER BY created",
            (user_id,),
        )
        return [TokenRecord(*row) for row in rows]

    def revoke_token_id(self, user_id: str, token_id: str) -> bool:
        """Revoke the user's token `token_id`; False when no such live token."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT hash FROM tokens WHERE user_id = ? AND id = ? AND revoked IS NULL",
                (user_id, token_id),
            ).fetchall()
            conn.execute(
                "UPDATE tokens SET revoked = ? WHERE user_id = ? AND id = ? AND revoked IS NULL",
                (time.time(), user_id, token_id),
            )
        for (digest,) in rows:
            redactor.drop(_redaction_owner(digest))
        return bool(rows)

    def authenticate(self, token: str) -> Caller | None:
        """The live, unexpired token's caller, or None; notes its last use (at most once a
        minute). Lookup by hash: no timing oracle on the token itself."""
        now = time.time()
        digest = token_hash(token)
        rows = self.db.query(
            "SELECT u.id, u.name, u.is_admin, u.created, t.id, t.scope, t.last_used"
            f" FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND {_LIVE}",
            (digest, now),
        )
        if not rows:
            return None
        row = rows[0]
        if row[6] is None or now - row[6] >= LAST_USED_EVERY:
            with self.db.transaction() as conn:
                conn.execute("UPDATE tokens SET last_used = ? WHERE hash = ?", (now, digest))
        return Caller(user=_user(row[:4]), token_id=row[4], scope=row[5])

    def revoke_tokens(self, user_id: str) -> int:
        self.get_user(user_id)
        with self.db.transaction() as conn:
            hashes = conn.execute(
                "SELECT hash FROM tokens WHERE user_id = ? AND revoked IS NULL", (user_id,)
            ).fetchall()
            cursor = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL",
                (time.time(), user_id),
            )
        for (digest,) in hashes:
            redactor.drop(_redaction_owner(digest))
        return cursor.rowcount

    def revoke_token(self, token: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET revoked = ? WHERE hash = ? AND revoked IS NULL",
                (time.time(), token_hash(token)),
            )
        redactor.drop(_redaction_owner(token_hash(token)))
        return cursor.rowcount > 0

    def user_for_token(self, token: str) -> User | None:
        """Lookup by hash: no timing oracle on the token itself."""
        rows = self.db.query(
            "SELECT u.id, u.name, u.is_admin, u.created"
            f" FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND {_LIVE}",
            (token_hash(token), time.time()),
        )
        return _user(rows[0]) if rows else None


def _redaction_owner(digest: str) -> str:
    """The log redactor's key for one issued token: dropped when it is revoked."""
    return f"token:{digest}"


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
