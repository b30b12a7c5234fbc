"""The PostgreSQL schema: the registry's tables plus the cluster's (nodes, leases).

Migrations run in one transaction under a transaction-level advisory lock, so
several nodes starting at once apply each step exactly once: the first takes
the lock and migrates, the others wait for its commit and then find nothing
left to do. Registry columns keep the SQLite types (INTEGER 0/1 flags, REAL
epoch seconds) so one row mapping serves both stores; cluster times are
`timestamptz` on the database's clock, the only clock every node shares.
"""

import logging

import psycopg

logger = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6C61726B  # "lark": the advisory lock key migrations serialise on

CHANNEL = "larkfleet"
"""The LISTEN/NOTIFY channel: payload `lease` (re-plan), `bot:<id>` (its row changed) or
`connect:<id>` (its row changed by a connect: the holder retries a bot in backoff/error)."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind TEXT NOT NULL DEFAULT 'user',
        created DOUBLE PRECISION NOT NULL,
        revoked DOUBLE PRECISION
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
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        options TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX bots_owner_app ON bots (owner, app_id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL DEFAULT '',
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        draining BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE bot_leases (
        bot_id TEXT PRIMARY KEY REFERENCES bots(id) ON DELETE CASCADE,
        holder TEXT,
        fence BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        state TEXT
    );
    CREATE INDEX bot_leases_holder ON bot_leases (holder);
    """,
    """
    ALTER TABLE tokens ADD COLUMN id TEXT;
    UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12) WHERE id IS NULL;
    CREATE UNIQUE INDEX tokens_id ON tokens (id);
    ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'owner';
    UPDATE tokens SET scope = 'admin' WHERE user_id IN (SELECT id FROM users WHERE is_admin = 1);
    ALTER TABLE tokens ADD COLUMN expires DOUBLE PRECISION;
    ALTER TABLE tokens ADD COLUMN last_used DOUBLE PRECISION;
    ALTER TABLE bots ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX bots_app ON bots (app_id);
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE answered_events (
        bot_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        message_id TEXT NOT NULL DEFAULT '',
        answered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (bot_id, event_id)
    );
    CREATE INDEX answered_events_at ON answered_events (answered_at);
    """,
)
"""Ordered schema steps; step N brings the schema to version N. Only ever append."""


def schema_version(conn: psycopg.Connection) -> int:
    """The applied version (0 on an empty database)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(conn: psycopg.Connection) -> int:
    """Apply every missing step, serialised across nodes; returns the version reached.

    Raises psycopg.Error when the database refuses (the caller reports it and exits).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = schema_version(conn)
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute(script)  # type: ignore[arg-type]  # fixed DDL, no parameters
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            logger.info("PostgreSQL schema migrated to version %d", version)
    return len(MIGRATIONS)
