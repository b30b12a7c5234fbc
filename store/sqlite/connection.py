"""The SQLite database of one data directory: connection, lock, transactions, migrations.

Calls are tiny single statements, so plain synchronous sqlite3 on one
connection (WAL, behind a lock) is enough and keeps the code obvious.
"""

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

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
    """
    ALTER TABLE bots ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
    """,
    """
    ALTER TABLE tokens ADD COLUMN id TEXT;
    UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12) WHERE id IS NULL;
    CREATE UNIQUE INDEX tokens_id ON tokens (id);
    ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'owner';
    UPDATE tokens SET scope = 'admin' WHERE user_id IN (SELECT id FROM users WHERE is_admin = 1);
    ALTER TABLE tokens ADD COLUMN expires REAL;
    ALTER TABLE tokens ADD COLUMN last_used REAL;
    ALTER TABLE bots ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX bots_app ON bots (app_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    """,
)
"""Ordered schema steps; step N brings the schema to version N. Only ever append."""


class Database:
    """One connection (0600 file, WAL) shared by the store's tables behind one lock."""

    def __init__(self, path: Path) -> None:
        """Open (creating) the database file; call `migrate()` before use."""
        self._lock = threading.RLock()
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def schema_version(self) -> int:
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def migrate(self) -> int:
        """Apply every migration newer than the stored version; safe to call any time."""
        current = self.schema_version()
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction() as conn:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            logger.info("registry schema migrated to version %d", version)
        return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; reentrant via the lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()
