"""The PostgreSQL store: the registry of a cluster, shared by every node.

The users and bots tables are the SQLite store's code over a PostgreSQL
connection (same SQL, same sealed columns); what differs is the connection,
the schema (store.postgres.schema, which also holds the cluster's tables),
and that every change of a bot row is NOTIFYed, so the node holding the bot
hears a change made through any node's API at once.

Every node must use the same secret key (LARKFLEET_SECRET_KEY): the key
check at start refuses a node whose key cannot open the stored secrets.
"""

from typing import Any

from shared.botconfig import BotConfig
from shared.logs import redactor
from shared.paths import DataPaths
from store.codec import KEY_CANARY, BotCodec
from store.postgres.connection import Database
from store.postgres.schema import MIGRATIONS
from store.postgres.url import password
from store.records import BotRecord
from store.secrets_box import SecretBox
from store.sqlite.audit import AuditTable
from store.sqlite.bots import BotTables
from store.sqlite.users import UserTables


class PostgresStore(UserTables, BotTables, AuditTable):
    """The store on PostgreSQL; one per process, like SQLiteStore."""

    def __init__(self, paths: DataPaths, url: str, bootstrap: bool = True) -> None:
        """Connect, migrate (safe when several nodes start at once), check the key.

        Raises psycopg.Error when the database cannot be reached, and
        store.secrets_box.SecretKeyError when the key cannot open stored secrets.
        """
        secret = password(url)
        if secret:
            redactor.add(secret)
        self.paths = paths
        paths.root.mkdir(parents=True, exist_ok=True)
        self.db = Database(url)  # type: ignore[assignment]  # same surface as SQLite's
        self.db.migrate()
        self.codec = BotCodec(SecretBox.from_source(paths.secret_key))
        self._check_key()
        if bootstrap:
            self.bootstrap_admin()

    def close(self) -> None:
        self.db.close()

    def schema_version(self) -> int:
        return self.db.schema_version()

    def migrate(self) -> int:
        return self.db.migrate()

    def _check_key(self) -> None:
        """The first node seals the canary; every later one must open it with its key."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta VALUES ('key_check', ?) ON CONFLICT (key) DO NOTHING",
                (self.codec.box.seal(KEY_CANARY),),
            )
        rows = self.db.query("SELECT value FROM meta WHERE key = 'key_check'")
        self.codec.check_canary(rows[0][0])

    # -- bot changes are announced to the holder ---------------------------------------

    def create_bot(self, owner: str, config: BotConfig) -> BotRecord:
        record = super().create_bot(owner, config)
        self._notify(record.config.id)
        return record

    def update_bot(self, bot_id: str, owner: str | None, **changes: Any) -> BotRecord:
        record = super().update_bot(bot_id, owner, **changes)
        self._notify(bot_id)
        return record

    def delete_bot(self, bot_id: str, owner: str | None = None) -> None:
        super().delete_bot(bot_id, owner)
        self._notify(bot_id)

    def set_desired_connected(self, bot_id: str, connected: bool) -> None:
        super().set_desired_connected(bot_id, connected)
        self._notify(bot_id, "connect" if connected else "bot")

    def set_shared(self, bot_id: str, shared: bool) -> BotRecord:
        record = super().set_shared(bot_id, shared)
        self._notify(bot_id)
        return record

    def _notify(self, bot_id: str, kind: str = "bot") -> None:
        """`bot:<id>` (its row changed) or `connect:<id>` (also: retry it now)."""
        self.db.notify(f"{kind}:{bot_id}")  # type: ignore[attr-defined]


__all__ = ["MIGRATIONS", "PostgresStore"]
