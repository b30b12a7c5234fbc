"""Persistent state: users, tokens, bots and their wishes, behind one interface.

Import from here: `Store` (the interface), `open_store` (the configured
implementation), the records and the errors.
"""

from shared.paths import DataPaths
from store.interface import Store
from store.records import (
    AuditEntry,
    BotBrief,
    BotRecord,
    Caller,
    Conflict,
    NotFound,
    TokenRecord,
    User,
)
from store.sqlite import SQLiteStore


def open_store(
    paths: DataPaths, database_url: str | None = None, bootstrap: bool = True
) -> Store:
    """The store for this data directory (created and migrated when new).

    With a postgresql:// `database_url` (cluster mode) the registry lives in
    PostgreSQL instead of <data>/larkfleet.db; raises psycopg.Error when it
    cannot be reached. `bootstrap` False leaves the admin and its token file alone
    (for offline tools such as `larkfleet rotate-key`).
    """
    if database_url:
        from store.postgres import PostgresStore

        return PostgresStore(paths, database_url, bootstrap)
    return SQLiteStore(paths, bootstrap)


__all__ = ["AuditEntry", "BotBrief", "BotRecord", "Caller", "Conflict", "NotFound",
           "SQLiteStore", "Store", "TokenRecord", "User", "open_store"]
