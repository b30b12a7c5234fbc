"""The embedded SQLite store: one file per data directory, the default engine."""

from shared.paths import DataPaths
from store.codec import KEY_CANARY, BotCodec
from store.secrets_box import SecretBox
from store.sqlite.audit import AuditTable
from store.sqlite.bots import BotTables
from store.sqlite.connection import MIGRATIONS, Database
from store.sqlite.users import UserTables


class SQLiteStore(UserTables, BotTables, AuditTable):
    """One SQLite store per data directory; create it once per process."""

    def __init__(self, paths: DataPaths, bootstrap: bool = True) -> None:
        """Open (creating and migrating) the store; the file is 0600 like the key.

        Raises store.secrets_box.SecretKeyError when the key cannot open stored secrets.
        """
        self.paths = paths
        paths.root.mkdir(parents=True, exist_ok=True)
        self.db = Database(paths.registry)
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
        """Fail at start, not at the first connect, when the key cannot open stored secrets."""
        rows = self.db.query("SELECT value FROM meta WHERE key = 'key_check'")
        if not rows:
            with self.db.transaction() as conn:
                canary = self.codec.box.seal(KEY_CANARY)
                conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (canary,))
        else:
            self.codec.check_canary(rows[0][0])


__all__ = ["MIGRATIONS", "SQLiteStore"]
